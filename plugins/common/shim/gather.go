package shim

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/contract"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// gatherer runs the configured inputs once per call of gather and makes
// what they add into the metrics Telegraf's agent would: filtered by the
// section's namepass, tagpass and the like, renamed, tagged with the
// section's tags and then the shared tags (global tags, host) where the
// metric lacks them, trimmed by taginclude and the like, its time rounded
// to the input's precision. The metrics stream: each is handed on as soon
// as its input adds it.
type gatherer struct {
	inputs []*inputState
	shared map[string]string
	agent  config.Agent

	mu      sync.Mutex
	run     *gatherRun        // the running gather; nil between gathers
	pending []telegraf.Metric // added between gathers (service inputs)
}

// gatherRun is one gather's hand-over: the inputs' goroutines send their
// metrics in batches on out, and the gather's own goroutine, the only one
// that calls emit, takes them. A sender waits while emit does (the
// outputs' backpressure) without holding any lock.
type gatherRun struct {
	out     chan []telegraf.Metric
	ended   chan struct{}  // closed when the gather stops taking
	senders sync.WaitGroup // sends under way
}

// handBatch is how many metrics an input hands over at once: one channel
// send per batch, not per metric.
const handBatch = 128

type inputState struct {
	cfg *config.Input
	log telegraf.Logger
	acc *Accumulator

	mu    sync.Mutex
	batch []telegraf.Metric // made, not handed over yet
}

func newGatherer(cfg *config.Config, logs *logger.Sink, shared map[string]string) *gatherer {
	g := &gatherer{shared: shared, agent: cfg.Agent}
	for _, in := range cfg.Inputs {
		log := logger.New(logs, in.ID())
		st := &inputState{cfg: in, log: log}
		st.acc = &Accumulator{
			OnError:  func(err error) { log.Error(err) },
			OnMetric: func(m telegraf.Metric) { g.hand(st, m) },
		}
		g.inputs = append(g.inputs, st)
	}
	return g
}

// schedules returns each input's schedule, in the order of the inputs.
func (g *gatherer) schedules() []config.Schedule {
	s := make([]config.Schedule, len(g.inputs))
	for i, in := range g.inputs {
		s[i] = in.cfg.Schedule
	}
	return s
}

// hand makes m and adds it to its input's batch, which goes to the
// running gather once full (the input's goroutine may then wait for the
// gather to take it).
func (g *gatherer) hand(in *inputState, m telegraf.Metric) {
	if made := g.make(in.cfg, m); made == nil {
		contract.Release(m) // filtered out: nobody else holds it
		return
	}
	in.mu.Lock()
	in.batch = append(in.batch, m)
	var full []telegraf.Metric
	if len(in.batch) >= handBatch {
		full, in.batch = in.batch, make([]telegraf.Metric, 0, handBatch)
	}
	in.mu.Unlock()
	if full != nil {
		g.send(full)
	}
}

// flushInput hands over what in's batch holds.
func (g *gatherer) flushInput(in *inputState) {
	in.mu.Lock()
	b := in.batch
	in.batch = nil
	in.mu.Unlock()
	if len(b) > 0 {
		g.send(b)
	}
}

// send gives b to the running gather, or keeps it for the next one.
func (g *gatherer) send(b []telegraf.Metric) {
	g.mu.Lock()
	run := g.run
	if run == nil {
		g.pending = append(g.pending, b...)
		g.mu.Unlock()
		return
	}
	run.senders.Add(1)
	g.mu.Unlock()
	defer run.senders.Done()
	select {
	case run.out <- b:
	case <-run.ended:
		// A service input's metrics, late for this gather: the next one.
		g.mu.Lock()
		g.pending = append(g.pending, b...)
		g.mu.Unlock()
	}
}

// make applies the section's options to m in Telegraf's order; nil means
// the metric is filtered out.
func (g *gatherer) make(in *config.Input, m telegraf.Metric) telegraf.Metric {
	if !in.Filter.Select(m) {
		return nil
	}
	in.Rename(m)
	addMissingTags(m, in.Tags)
	addMissingTags(m, g.shared)
	if in.Filter.Modifies() {
		in.Filter.Modify(m)
		if len(m.FieldList()) == 0 {
			return nil
		}
		if g.agent.AlwaysIncludeLocalTags {
			addMissingTags(m, in.Tags)
		}
		if g.agent.AlwaysIncludeGlobalTags {
			addMissingTags(m, g.shared)
		}
	}
	if p := in.Schedule.Precision; p > 0 {
		m.SetTime(m.Time().Round(p))
	}
	return m
}

func addMissingTags(m telegraf.Metric, tags map[string]string) {
	for k, v := range tags {
		if !m.HasTag(k) {
			m.AddTag(k, v)
		}
	}
}

// start starts the service inputs, if any.
func (g *gatherer) start() error {
	for _, in := range g.inputs {
		if s, ok := in.cfg.Input.(telegraf.ServiceInput); ok {
			if err := s.Start(in.acc); err != nil {
				return fmt.Errorf("starting %s: %w", in.cfg.ID(), err)
			}
		}
	}
	return nil
}

// stop stops the service inputs, if any.
func (g *gatherer) stop() {
	for _, in := range g.inputs {
		if s, ok := in.cfg.Input.(telegraf.ServiceInput); ok {
			s.Stop()
		}
	}
}

// gather runs every input concurrently, hands each metric to emit as it
// comes (never two calls at once), and returns the number of errors the
// inputs reported (each already logged).
func (g *gatherer) gather(emit func(telegraf.Metric)) int {
	return g.gatherDue(emit, nil)
}

// gatherDue is gather for the inputs due says (all when due is nil).
func (g *gatherer) gatherDue(emit func(telegraf.Metric), due []bool) int {
	run := &gatherRun{out: make(chan []telegraf.Metric, len(g.inputs)), ended: make(chan struct{})}
	g.mu.Lock()
	pending := g.pending
	g.pending, g.run = nil, run
	g.mu.Unlock()
	for _, m := range pending {
		emit(m)
	}

	errs := make([]int, len(g.inputs))
	var wg sync.WaitGroup
	for i, in := range g.inputs {
		if due != nil && !due[i] {
			continue
		}
		wg.Go(func() {
			if err := in.cfg.Input.Gather(in.acc); err != nil {
				in.acc.AddError(err)
			}
			g.flushInput(in)
			_, e := in.acc.Drain()
			errs[i] = len(e)
		})
	}
	inputsDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(inputsDone)
	}()
	take := func(b []telegraf.Metric) {
		for _, m := range b {
			emit(m)
		}
	}
	for done := false; !done; {
		select {
		case b := <-run.out:
			take(b)
		case <-inputsDone:
			done = true
		}
	}
	// No new sender from here; those under way end at once.
	g.mu.Lock()
	g.run = nil
	g.mu.Unlock()
	close(run.ended)
	run.senders.Wait()
	for len(run.out) > 0 { // sent before the inputs were done
		take(<-run.out)
	}
	total := 0
	for _, n := range errs {
		total += n
	}
	return total
}

// SharedTags returns the tags added to every gathered metric: the
// config's [global_tags] and, when withHost is true, "host" (the short host
// name, or [agent] hostname) unless [agent] omit_hostname is set.
func SharedTags(cfg *config.Config, withHost bool) (map[string]string, error) {
	tags := make(map[string]string, len(cfg.GlobalTags)+1)
	for k, v := range cfg.GlobalTags {
		tags[k] = v
	}
	if !withHost || cfg.Agent.OmitHostname {
		return tags, nil
	}
	if _, ok := tags["host"]; ok {
		return tags, nil
	}
	host := cfg.Agent.Hostname
	if host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("reading the host name (set [agent] hostname): %w", err)
		}
		host = ShortHostname(h)
	}
	tags["host"] = host
	return tags, nil
}

// ShortHostname returns the first label of a host name, as the original
// HAP-Monitor put in its paths: "lb1" for "lb1.example.org".
func ShortHostname(h string) string {
	if i := strings.IndexByte(h, '.'); i > 0 {
		return h[:i]
	}
	return h
}
