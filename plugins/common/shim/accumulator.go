package shim

import (
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

// Accumulator is the telegraf.Accumulator an input gathers into. It keeps
// the metrics and errors of one gather, safe for concurrent use by the
// input's goroutines, until Drain hands them over.
type Accumulator struct {
	mu        sync.Mutex
	metrics   []telegraf.Metric
	errors    []error
	precision time.Duration
	// OnError, if set, is called for each error as it is added (to log it).
	OnError func(error)
	// OnMetric, if set, is handed each metric as it is added, and the
	// metric is not kept for Drain: a gather then streams, holding no
	// more than the metrics in hand. Calls never overlap.
	OnMetric func(telegraf.Metric)
}

var _ telegraf.Accumulator = (*Accumulator)(nil)

func (a *Accumulator) add(name string, fields map[string]any, tags map[string]string, tp telegraf.ValueType, t []time.Time) {
	if len(fields) == 0 {
		return
	}
	ts := time.Now()
	if len(t) > 0 {
		ts = t[0]
	}
	a.mu.Lock()
	if a.precision > 0 {
		ts = ts.Round(a.precision)
	}
	a.keep(metric.New(name, tags, fields, ts, tp))
	a.mu.Unlock()
}

// keep passes m to OnMetric or keeps it for Drain; a.mu is held.
func (a *Accumulator) keep(m telegraf.Metric) {
	if a.OnMetric != nil {
		a.OnMetric(m)
		return
	}
	a.metrics = append(a.metrics, m)
}

func (a *Accumulator) AddFields(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.add(name, fields, tags, telegraf.Untyped, t)
}

func (a *Accumulator) AddGauge(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.add(name, fields, tags, telegraf.Gauge, t)
}

func (a *Accumulator) AddCounter(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.add(name, fields, tags, telegraf.Counter, t)
}

func (a *Accumulator) AddSummary(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.add(name, fields, tags, telegraf.Summary, t)
}

func (a *Accumulator) AddHistogram(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.add(name, fields, tags, telegraf.Histogram, t)
}

// AddMetric keeps m as it is.
func (a *Accumulator) AddMetric(m telegraf.Metric) {
	a.mu.Lock()
	a.keep(m)
	a.mu.Unlock()
}

// SetPrecision rounds the timestamps of metrics added from now on.
func (a *Accumulator) SetPrecision(p time.Duration) {
	a.mu.Lock()
	a.precision = p
	a.mu.Unlock()
}

// AddError records err (nil is ignored) and passes it to OnError.
func (a *Accumulator) AddError(err error) {
	if err == nil {
		return
	}
	a.mu.Lock()
	a.errors = append(a.errors, err)
	onError := a.OnError
	a.mu.Unlock()
	if onError != nil {
		onError(err)
	}
}

// WithTracking is not supported: hap-monitor's inputs never track delivery.
func (a *Accumulator) WithTracking(int) telegraf.TrackingAccumulator {
	panic("shim.Accumulator: delivery tracking is not supported")
}

// Drain returns the metrics and errors added since the last Drain and
// forgets them.
func (a *Accumulator) Drain() ([]telegraf.Metric, []error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, e := a.metrics, a.errors
	a.metrics, a.errors = nil, nil
	return m, e
}
