package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/lineproto"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// MaxLineBytes is the longest line the execd output runner decodes; a
// longer one is reported and skipped.
const MaxLineBytes = lineproto.MaxLineBytes

// OutputOptions says how the execd output runner batches what it reads.
type OutputOptions struct {
	// BatchSize is the most metrics per Write ([agent] metric_batch_size).
	BatchSize int
	// FlushInterval is the longest a metric waits for its batch to fill
	// when an output has no buffer of its own ([agent] flush_interval).
	FlushInterval time.Duration
	// FlushJitter adds a random time up to it to each FlushInterval.
	FlushJitter time.Duration
}

// ErrUndelivered is wrapped by the error a runner returns when metrics
// were not delivered.
var ErrUndelivered = errors.New("metrics not delivered")

// RunOutput runs the config's outputs as Telegraf's outputs.execd expects:
// it reads influx line protocol from stdin and hands the metrics to every
// output in batches of BatchSize, or whatever has arrived each
// FlushInterval. A line that does not decode is logged with its line number
// and skipped; the others are delivered. At EOF (or when ctx is cancelled)
// it writes what is left and closes the outputs; it returns nil if the
// outputs delivered everything, an error wrapping ErrUndelivered otherwise.
func RunOutput(ctx context.Context, cfg *config.Config, opts OutputOptions, stdin io.Reader, logs *logger.Sink) error {
	opts = opts.withDefaults()
	d := newDelivery(cfg, logs)
	if err := d.start(); err != nil {
		d.close()
		return err
	}
	metrics := make(chan telegraf.Metric, opts.BatchSize)
	go readMetrics(stdin, metrics, logger.New(logs, ""))

	tick := time.NewTimer(opts.FlushInterval + jitter(opts.FlushJitter))
	defer tick.Stop()
	// Outputs that keep their own buffer take metrics as soon as the reader
	// has no more at hand: waiting for a batch to fill would only delay
	// what Telegraf already flushed.
	eager := d.allBuffered()
	batch := make([]telegraf.Metric, 0, opts.BatchSize)
	flush := func() {
		d.write(batch)
		batch = make([]telegraf.Metric, 0, opts.BatchSize)
	}
loop:
	for {
		select {
		case m, ok := <-metrics:
			if !ok {
				break loop
			}
			batch = append(batch, m)
			if len(batch) >= opts.BatchSize || eager && len(metrics) == 0 {
				flush()
			}
		case <-tick.C:
			tick.Reset(opts.FlushInterval + jitter(opts.FlushJitter))
			if len(batch) > 0 {
				flush()
			}
		case <-ctx.Done():
			// Delivery gets its timeout to finish, then spools.
			d.interrupt()
			batch = drain(metrics, batch)
			break loop
		}
	}
	d.writeBatches(batch, opts.BatchSize)
	if n := d.close(); n > 0 {
		return fmt.Errorf("%d %w", n, ErrUndelivered)
	}
	return nil
}

func (o OutputOptions) withDefaults() OutputOptions {
	if o.BatchSize <= 0 {
		o.BatchSize = config.DefaultMetricBatchSize
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = config.DefaultFlushInterval
	}
	return o
}

// drain appends the metrics already decoded, without waiting for more.
func drain(metrics <-chan telegraf.Metric, batch []telegraf.Metric) []telegraf.Metric {
	for {
		select {
		case m, ok := <-metrics:
			if !ok {
				return batch
			}
			batch = append(batch, m)
		default:
			return batch
		}
	}
}

// readMetrics decodes r line by line into out, logging and skipping the
// lines that do not decode, and closes out at EOF.
func readMetrics(r io.Reader, out chan<- telegraf.Metric, log *logger.Logger) {
	defer close(out)
	lr := lineproto.NewReader(r, MaxLineBytes)
	for {
		m, err := lr.Next()
		var le *lineproto.LineError
		var re *lineproto.ReadError
		switch {
		case err == nil:
			out <- m
		case errors.As(err, &le) && errors.Is(le.Err, lineproto.ErrLineTooLong):
			log.Warnf("line %d: longer than %d bytes, skipped", le.Line, MaxLineBytes)
		case errors.As(err, &le) && errors.Is(le.Err, lineproto.ErrCutShort):
			// Telegraf ends every line with a line break: one without is
			// what a writer that died mid-line leaves, and its value may
			// be cut short ("v=12" of "v=123").
			log.Warnf("line %d: input ended before its line break, skipped as possibly cut short", le.Line)
		case errors.As(err, &le):
			log.Warnf("line %d: %v", le.Line, le.Err)
		case errors.As(err, &re):
			log.Errorf("reading stdin after line %d: %v", re.After, re.Err)
			return
		default: // io.EOF
			return
		}
	}
}
