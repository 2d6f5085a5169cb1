package shim

import (
	"fmt"
	"sync"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/contract"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// delivery hands metrics to every configured output, each delivering on a
// goroutine of its own, so that handing over never waits on the network
// for a Buffered output.
type delivery struct {
	outs    []*outputState
	started bool
}

type outputState struct {
	cfg      *config.Output
	log      telegraf.Logger
	buffered contract.Buffered // nil for other outputs
	// batches feed an output that is not Buffered, one Write each.
	batches chan []telegraf.Metric
	stop    chan struct{}
	done    chan struct{}
	// lost counts metrics whose Write failed, for outputs that are not
	// Buffered (for them a failed Write means the metrics are lost).
	lost int
}

func newDelivery(cfg *config.Config, logs *logger.Sink) *delivery {
	d := &delivery{}
	for _, out := range cfg.Outputs {
		o := &outputState{cfg: out, log: logger.New(logs, out.ID()), stop: make(chan struct{}), done: make(chan struct{})}
		o.buffered, _ = out.Output.(contract.Buffered)
		if out.FlushInterval <= 0 {
			out.FlushInterval = config.DefaultFlushInterval
		}
		if out.BatchSize <= 0 {
			out.BatchSize = config.DefaultMetricBatchSize
		}
		d.outs = append(d.outs, o)
	}
	return d
}

// start connects every output and starts its delivery goroutine; a
// Buffered output is asked to deliver whenever metrics were added and
// every flush_interval (plus up to flush_jitter), to retry what it holds.
// The first failure to connect is returned.
func (d *delivery) start() error {
	for _, o := range d.outs {
		if err := o.cfg.Output.Connect(); err != nil {
			return fmt.Errorf("connecting %s: %w", o.cfg.ID(), err)
		}
	}
	d.started = true
	for _, o := range d.outs {
		if o.buffered != nil {
			go o.deliverBuffered(o.cfg.FlushInterval, o.cfg.FlushJitter)
		} else {
			o.batches = make(chan []telegraf.Metric, 4)
			go o.deliverBatches()
		}
	}
	return nil
}

func (o *outputState) deliverBuffered(flush, flushJitter time.Duration) {
	defer close(o.done)
	t := time.NewTimer(flush + jitter(flushJitter))
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-o.buffered.Ready():
		case <-t.C:
			t.Reset(flush + jitter(flushJitter))
			if o.buffered.Undelivered() == 0 {
				continue
			}
		}
		o.buffered.Deliver()
	}
}

func (o *outputState) deliverBatches() {
	defer close(o.done)
	for b := range o.batches {
		if err := o.cfg.Output.Write(b); err != nil {
			o.log.Errorf("writing %d metrics: %v", len(b), err)
			o.lost += len(b)
		}
	}
}

// write hands ms to every output, as Telegraf's agent does: those its
// namepass, tagpass and the like select, trimmed by its fieldinclude,
// taginclude and the like, renamed by its name_override, name_prefix and
// name_suffix. Every output but the last gets copies, as an output may
// change the metrics it is given. An output that is not Buffered gets them
// metric_batch_size at a time.
func (d *delivery) write(ms []telegraf.Metric) {
	if len(ms) == 0 {
		return
	}
	for i, o := range d.outs {
		batch := o.prepare(ms, i < len(d.outs)-1)
		if len(batch) == 0 {
			continue
		}
		if o.buffered != nil {
			o.buffered.Add(batch)
			continue
		}
		for len(batch) > 0 {
			n := min(o.cfg.BatchSize, len(batch))
			o.batches <- batch[:n:n]
			batch = batch[n:]
		}
	}
}

// prepare returns the metrics of ms that o takes, made as o's section says;
// copies when copied is true.
func (o *outputState) prepare(ms []telegraf.Metric, copied bool) []telegraf.Metric {
	p := &o.cfg.Plugin
	plain := p.Filter == nil && p.NameOverride == "" && p.NamePrefix == "" && p.NameSuffix == ""
	if plain && !copied {
		return ms
	}
	out := make([]telegraf.Metric, 0, len(ms))
	for _, m := range ms {
		if !p.Filter.Select(m) {
			if !copied {
				contract.Release(m) // the last output leaves it: nobody holds it
			}
			continue
		}
		if copied {
			m = m.Copy()
		}
		if p.Filter.Modifies() {
			p.Filter.Modify(m)
			if len(m.FieldList()) == 0 {
				contract.Release(m)
				continue
			}
		}
		p.Rename(m)
		out = append(out, m)
	}
	return out
}

// writeBatches hands ms to the outputs size metrics at a time.
func (d *delivery) writeBatches(ms []telegraf.Metric, size int) {
	for len(ms) > 0 {
		n := min(size, len(ms))
		d.write(ms[:n])
		ms = ms[n:]
	}
}

// allBuffered reports whether every output keeps its own buffer.
func (d *delivery) allBuffered() bool {
	for _, o := range d.outs {
		if o.buffered == nil {
			return false
		}
	}
	return true
}

// interrupt asks every output that can to end its delivery soon.
func (d *delivery) interrupt() {
	for _, o := range d.outs {
		if i, ok := o.cfg.Output.(contract.Interrupter); ok {
			i.Interrupt()
		}
	}
}

// close stops the delivery goroutines (a Buffered output finishes the
// delivery in progress), closes every output (delivering or spooling
// what is left) and returns how many metrics were not delivered, summed
// over the outputs.
func (d *delivery) close() int {
	var wg sync.WaitGroup
	for _, o := range d.outs {
		wg.Go(func() {
			if d.started {
				if o.batches != nil {
					close(o.batches)
				} else {
					close(o.stop)
				}
				<-o.done
			}
			if err := o.cfg.Output.Close(); err != nil {
				o.log.Errorf("closing: %v", err)
			}
		})
	}
	wg.Wait()
	total := 0
	for _, o := range d.outs {
		n := o.lost
		if o.buffered != nil {
			n = o.buffered.Undelivered()
		}
		switch {
		case n > 0 && o.buffered != nil:
			// The output said what failed and where the metrics went.
			o.log.Debugf("%d metrics not delivered", n)
		case n > 0:
			o.log.Errorf("%d metrics not delivered", n)
		}
		total += n
	}
	return total
}
