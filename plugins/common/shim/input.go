package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/influxdata/telegraf"
	"io"
	"os"
	"time"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/contract"
	"github.com/hap-monitor/hap-monitor/plugins/common/lineproto"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// InputOptions says when the execd input runner gathers.
type InputOptions struct {
	// Clock makes each input gather on its own schedule too (its interval,
	// else [agent] interval, else 10s); without it only stdin newlines and
	// triggers make gathers (Telegraf's signal = "STDIN" or a signal drives
	// them).
	Clock bool
	// Interval, when positive, replaces every input's interval
	// (-poll_interval).
	Interval time.Duration
	// Triggers delivers the signals that ask for a gather (SIGHUP, SIGUSR1,
	// SIGUSR2: see HandleSignals); nil if none.
	Triggers <-chan os.Signal
}

// RunInput runs the config's inputs as Telegraf's inputs.execd expects: it
// gathers every input on each newline read from stdin and each trigger
// signal, and each input on its schedule with Clock, and writes the metrics to stdout in influx line protocol,
// flushed after each gather. Gathers never overlap: triggers arriving during
// a gather are folded into one more gather after it. Input errors are logged
// and the runner goes on.
//
// It returns nil when stdin reaches EOF (after the gathers asked for before
// it) or when ctx is cancelled (after the gather in flight), and an error if
// stdout cannot be written (the reader went away).
func RunInput(ctx context.Context, cfg *config.Config, opts InputOptions, stdin io.Reader, stdout io.Writer, logs *logger.Sink) error {
	shared, err := SharedTags(cfg, false)
	if err != nil {
		return err
	}
	g := newGatherer(cfg, logs, shared)
	if err := g.start(); err != nil {
		return err
	}
	defer g.stop()

	pending := make(chan struct{}, 1) // one queued gather at most
	eof := make(chan struct{})
	go watchStdin(stdin, pending, eof, logger.New(logs, ""))

	var c *clock
	var tick <-chan int
	if opts.Clock {
		c = startClock(g.schedules(), opts.Interval)
		defer c.stop()
		tick = c.due
	}
	enc := lineproto.NewEncoder(stdout)
	log := logger.New(logs, "")
	gatherOnce := func() error { return writeGather(g, enc, log, nil) }
	for {
		// Stopping wins over anything queued.
		select {
		case <-ctx.Done():
			return nil
		default:
		}
		var due []bool // nil: every input
		select {
		case <-ctx.Done():
			return nil
		case <-pending:
		case i := <-tick:
			due = c.collect(i, len(g.inputs))
		case <-opts.Triggers:
		case <-eof:
			// Gathers asked for by the last lines before EOF still happen.
			select {
			case <-pending:
				return gatherOnce()
			default:
				return nil
			}
		}
		// Triggers that came together (during the last gather) make one.
		if fold(pending, opts.Triggers) {
			due = nil
		}
		if due == nil && c != nil {
			c.collectAll()
		}
		if err := writeGather(g, enc, log, due); err != nil {
			return err
		}
	}
}

// fold takes whatever trigger is ready on each channel, without waiting,
// and reports whether there was one.
func fold(pending <-chan struct{}, signals <-chan os.Signal) bool {
	found := false
	select {
	case <-pending:
		found = true
	default:
	}
	select {
	case <-signals:
		found = true
	default:
	}
	return found
}

// writeGather gathers the inputs due (all when nil) once and writes the
// metrics to the encoder's writer as they come.
func writeGather(g *gatherer, enc *lineproto.Encoder, log *logger.Logger, due []bool) error {
	lw := &lineWriter{enc: enc, log: log}
	g.gatherDue(lw.add, due)
	return lw.flush()
}

// flushBytes is how much encoded line protocol is buffered before it is
// written out: large enough for few writes, small enough that a gather's
// output never sits whole in memory.
const flushBytes = 256 << 10

// lineWriter encodes metrics as they come and writes them out in chunks.
// After a write error it encodes nothing more; flush returns the error.
type lineWriter struct {
	enc *lineproto.Encoder
	log *logger.Logger
	err error
}

func (w *lineWriter) add(m telegraf.Metric) {
	defer contract.Release(m) // encoded or lost: nobody else holds it
	if w.err != nil {
		return
	}
	if err := w.enc.Encode(m); err != nil {
		w.log.Warn(err) // only this one metric is lost
		return
	}
	if w.enc.Len() >= flushBytes {
		_ = w.flush() // kept in w.err, which ends the input
	}
}

func (w *lineWriter) flush() error {
	if w.err == nil {
		if err := w.enc.Flush(); err != nil {
			w.err = fmt.Errorf("writing metrics to stdout: %w", err)
		}
	}
	return w.err
}

// watchStdin asks for one gather per newline read (coalesced by pending's
// capacity) and closes eof when stdin ends.
func watchStdin(stdin io.Reader, pending chan<- struct{}, eof chan<- struct{}, log *logger.Logger) {
	defer close(eof)
	buf := make([]byte, 4096)
	for {
		n, err := stdin.Read(buf)
		if bytes.IndexByte(buf[:n], '\n') >= 0 {
			select {
			case pending <- struct{}{}:
			default: // a gather is already queued
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				log.Warnf("reading stdin: %v", err)
			}
			return
		}
	}
}
