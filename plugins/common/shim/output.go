package shim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// MaxLineBytes is the longest line the execd output runner decodes; a
// longer one is reported and skipped.
const MaxLineBytes = 4 << 20

// OutputOptions says how the execd output runner batches what it reads.
type OutputOptions struct {
	// BatchSize is the most metrics per Write ([agent] metric_batch_size).
	BatchSize int
	// FlushInterval is the longest a metric waits for its batch to fill,
	// and how often outputs holding undelivered metrics retry them
	// ([agent] flush_interval).
	FlushInterval time.Duration
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
	if err := d.connect(); err != nil {
		return err
	}
	metrics := make(chan telegraf.Metric, opts.BatchSize)
	go readMetrics(stdin, metrics, logger.New(logs, ""))

	tick := time.NewTicker(opts.FlushInterval)
	defer tick.Stop()
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
			if len(batch) >= opts.BatchSize {
				flush()
			}
		case <-tick.C:
			if len(batch) > 0 {
				flush()
			} else {
				d.retry()
			}
		case <-ctx.Done():
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
	lr := lineReader{r: bufio.NewReaderSize(r, 64*1024), max: MaxLineBytes}
	for n := 1; ; n++ {
		line, err := lr.next()
		if len(line) > 0 && line[len(line)-1] != '\n' && errors.Is(err, io.EOF) {
			// Telegraf ends every line with a line break: one without is
			// what a writer that died mid-line leaves, and its value may
			// be cut short ("v=12" of "v=123").
			log.Warnf("line %d: input ended before its line break, skipped as possibly cut short", n)
			return
		}
		if line != nil {
			m, derr := decodeLine(line, time.Now())
			switch {
			case derr != nil:
				log.Warnf("line %d: %v", n, derr)
			case m != nil:
				out <- m
			}
		}
		if errors.Is(err, errLineTooLong) {
			log.Warnf("line %d: longer than %d bytes, skipped", n, lr.max)
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Errorf("reading stdin after line %d: %v", n-1, err)
			}
			return
		}
	}
}

var errLineTooLong = errors.New("line too long")

// lineReader returns stdin's lines one at a time, up to max bytes each.
type lineReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// next returns the next line without its newline; nil and errLineTooLong
// for a line over max bytes (consumed whole); the last line and io.EOF at
// the end.
func (l *lineReader) next() ([]byte, error) {
	l.buf = l.buf[:0]
	tooLong := false
	for {
		chunk, err := l.r.ReadSlice('\n')
		if !tooLong {
			if len(l.buf)+len(chunk) > l.max+1 {
				tooLong, l.buf = true, l.buf[:0]
			} else {
				l.buf = append(l.buf, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			if err == nil {
				err = errLineTooLong
			} else if errors.Is(err, io.EOF) {
				err = errors.Join(errLineTooLong, err)
			}
			return nil, err
		}
		if len(l.buf) == 0 && err != nil {
			return nil, err
		}
		return l.buf, err
	}
}

// decodeLine decodes one line of influx line protocol (nanosecond
// timestamps, now when it has none). An empty or comment line gives nil, nil.
func decodeLine(line []byte, now time.Time) (telegraf.Metric, error) {
	dec := lineprotocol.NewDecoderWithBytes(line)
	if !dec.Next() {
		return nil, nil
	}
	name, err := dec.Measurement()
	if err != nil {
		return nil, decodeErr(err)
	}
	tags := make(map[string]string)
	for {
		k, v, err := dec.NextTag()
		if err != nil {
			return nil, decodeErr(err)
		}
		if k == nil {
			break
		}
		tags[string(k)] = string(v)
	}
	fields := make(map[string]any)
	for {
		k, v, err := dec.NextField()
		if err != nil {
			return nil, decodeErr(err)
		}
		if k == nil {
			break
		}
		fields[string(k)] = v.Interface()
	}
	ts, err := dec.Time(lineprotocol.Nanosecond, now)
	if err != nil {
		return nil, decodeErr(err)
	}
	if dec.Next() {
		return nil, errors.New("more than one metric on the line")
	}
	return metric.New(string(name), tags, fields, ts), nil
}

// decodeErr drops the decoder's own line number (always 1 here: the
// caller knows the real one) and keeps the column.
func decodeErr(err error) error {
	var de *lineprotocol.DecodeError
	if errors.As(err, &de) {
		return fmt.Errorf("column %d: %w", de.Column, de.Err)
	}
	return err
}
