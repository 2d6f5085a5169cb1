package shim

import (
	"fmt"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// Undeliverer is implemented by outputs that keep what they could not
// deliver and retry it themselves: Write accepts metrics into the output's
// buffer, Write(nil) retries what is buffered, Close delivers or spools
// what is left, and Undelivered then tells how many metrics were neither
// delivered nor kept for a later run.
type Undeliverer interface {
	Undelivered() int
}

// delivery hands metrics to every configured output and keeps count of
// what did not reach them.
type delivery struct {
	outs []*outputState
}

type outputState struct {
	cfg *config.Output
	log telegraf.Logger
	// lost counts metrics whose Write failed, for outputs that are not
	// Undeliverers (for them a failed Write means the metrics are lost).
	lost int
}

func newDelivery(cfg *config.Config, logs *logger.Sink) *delivery {
	d := &delivery{}
	for _, out := range cfg.Outputs {
		d.outs = append(d.outs, &outputState{cfg: out, log: logger.New(logs, out.ID())})
	}
	return d
}

// connect connects every output; the first failure is returned.
func (d *delivery) connect() error {
	for _, o := range d.outs {
		if err := o.cfg.Output.Connect(); err != nil {
			return fmt.Errorf("connecting %s: %w", o.cfg.ID(), err)
		}
	}
	return nil
}

// write hands ms to every output (a copy to all but the last, as an output
// may change the metrics it is given). Failures are logged.
func (d *delivery) write(ms []telegraf.Metric) {
	if len(ms) == 0 {
		return
	}
	for i, o := range d.outs {
		batch := ms
		if i < len(d.outs)-1 {
			batch = make([]telegraf.Metric, len(ms))
			for j, m := range ms {
				batch[j] = m.Copy()
			}
		}
		if err := o.cfg.Output.Write(batch); err != nil {
			o.log.Errorf("writing %d metrics: %v", len(batch), err)
			if _, ok := o.cfg.Output.(Undeliverer); !ok {
				o.lost += len(batch)
			}
		}
	}
}

// writeBatches hands ms to the outputs size metrics at a time.
func (d *delivery) writeBatches(ms []telegraf.Metric, size int) {
	for len(ms) > 0 {
		n := min(size, len(ms))
		d.write(ms[:n])
		ms = ms[n:]
	}
}

// retry asks every output holding undelivered metrics to try them again.
func (d *delivery) retry() {
	for _, o := range d.outs {
		u, ok := o.cfg.Output.(Undeliverer)
		if !ok || u.Undelivered() == 0 {
			continue
		}
		if err := o.cfg.Output.Write(nil); err != nil {
			o.log.Errorf("retrying %d metrics: %v", u.Undelivered(), err)
		}
	}
}

// close closes every output and returns how many metrics were not
// delivered, summed over the outputs.
func (d *delivery) close() int {
	total := 0
	for _, o := range d.outs {
		if err := o.cfg.Output.Close(); err != nil {
			o.log.Errorf("closing: %v", err)
		}
		n := o.lost
		if u, ok := o.cfg.Output.(Undeliverer); ok {
			n = u.Undelivered()
		}
		if n > 0 {
			o.log.Errorf("%d metrics not delivered", n)
		}
		total += n
	}
	return total
}
