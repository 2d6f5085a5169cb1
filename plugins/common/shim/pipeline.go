package shim

import (
	"context"
	"errors"
	"fmt"
	"github.com/influxdata/telegraf"
	"io"
	"time"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/lineproto"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// PipelineOptions says when the pipeline runner gathers.
type PipelineOptions struct {
	// Once gathers once, delivers, closes the outputs and returns (cron).
	Once bool
	// Interval, when positive, replaces every input's interval
	// (-poll_interval); otherwise each input gathers on its own schedule
	// (its interval, else [agent] interval, else 10s).
	Interval time.Duration
}

// RunPipeline gathers from the config's inputs and hands the metrics to
// every output, in process: once, or right away and then every Interval
// until ctx is cancelled. Metrics carry the section's tags, the global tags
// and the host tag (see SharedTags). Gathering never waits on delivery:
// each output delivers on a goroutine of its own, from its buffer, and
// retries what it holds every [agent] flush_interval.
//
// With Once, it returns an error if any input reported an error or any
// metric was not delivered (every socket is still gathered and every metric
// gathered still handed over); otherwise only for undelivered metrics.
func RunPipeline(ctx context.Context, cfg *config.Config, opts PipelineOptions, logs *logger.Sink) error {
	shared, err := SharedTags(cfg, true)
	if err != nil {
		return err
	}
	g := newGatherer(cfg, logs, shared)
	d := newDelivery(cfg, logs)
	if err := d.start(); err != nil {
		d.close()
		return err
	}
	if err := g.start(); err != nil {
		d.close()
		return err
	}
	// Asked to stop, delivery gets its timeout to finish, then spools.
	stopInterrupt := context.AfterFunc(ctx, d.interrupt)
	defer stopInterrupt()
	batch := cfg.Agent.BatchSize()
	gatherErrs := 0
	if opts.Once {
		gatherErrs = gatherInto(g, d, batch, nil)
	} else {
		// Errors are logged as they come; a long run is judged on delivery.
		runScheduled(ctx, g, opts.Interval, func(due []bool) { gatherInto(g, d, batch, due) })
	}
	g.stop()
	undelivered := d.close()
	switch {
	case undelivered > 0 && gatherErrs > 0:
		return fmt.Errorf("%s and %d %w", inputErrors(gatherErrs), undelivered, ErrUndelivered)
	case undelivered > 0:
		return fmt.Errorf("%d %w", undelivered, ErrUndelivered)
	case gatherErrs > 0:
		return errors.New(inputErrors(gatherErrs))
	}
	return nil
}

// inputErrors counts input errors for the run's last line: "1 input
// error", "2 input errors".
func inputErrors(n int) string {
	if n == 1 {
		return "1 input error"
	}
	return fmt.Sprintf("%d input errors", n)
}

// gatherInto gathers the inputs due (all when nil) once and hands the metrics to the outputs in batches
// of size as they fill, while the inputs go on reading and parsing; the
// outputs deliver on goroutines of their own. It returns the number of
// input errors.
func gatherInto(g *gatherer, d *delivery, size int, due []bool) int {
	batch := make([]telegraf.Metric, 0, size)
	errs := g.gatherDue(func(m telegraf.Metric) {
		batch = append(batch, m)
		if len(batch) == size {
			d.write(batch)
			batch = make([]telegraf.Metric, 0, size)
		}
	}, due)
	d.write(batch)
	return errs
}

// runScheduled gathers each input on its schedule (every interval, when
// positive, instead) until ctx is cancelled. Gathers never overlap: inputs
// that come due during one are gathered together after it.
func runScheduled(ctx context.Context, g *gatherer, interval time.Duration, gather func(due []bool)) {
	c := startClock(g.schedules(), interval)
	defer c.stop()
	for {
		select {
		case <-ctx.Done():
			return
		case i := <-c.due:
			gather(c.collect(i, len(g.inputs)))
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// GatherOnce gathers once from the config's inputs and writes the metrics
// to w in influx line protocol, tagged as the pipeline would tag them; it
// delivers nothing (-test). Each metric's fields are sorted by key, as
// Telegraf's --test prints them. It returns an error if an input reported one.
func GatherOnce(cfg *config.Config, w io.Writer, logs *logger.Sink) error {
	shared, err := SharedTags(cfg, true)
	if err != nil {
		return err
	}
	g := newGatherer(cfg, logs, shared)
	if err := g.start(); err != nil {
		return err
	}
	defer g.stop()
	enc := lineproto.NewEncoder(w)
	enc.SortFields() // as Telegraf's --test: two runs can be diffed
	lw := &lineWriter{enc: enc, log: logger.New(logs, "")}
	errs := g.gather(lw.add)
	if err := lw.flush(); err != nil {
		return err
	}
	if errs > 0 {
		return errors.New(inputErrors(errs))
	}
	return nil
}
