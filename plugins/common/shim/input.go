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
	"github.com/hap-monitor/hap-monitor/plugins/common/lineproto"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// InputOptions says when the execd input runner gathers.
type InputOptions struct {
	// PollInterval is the time between gathers of its own; 0 disables them
	// (Telegraf's signal = "STDIN" or a signal drives the gathers).
	PollInterval time.Duration
	// Triggers delivers the signals that ask for a gather (SIGHUP, SIGUSR1,
	// SIGUSR2: see HandleSignals); nil if none.
	Triggers <-chan os.Signal
}

// RunInput runs the config's inputs as Telegraf's inputs.execd expects: it
// gathers on each newline read from stdin, each PollInterval and each
// trigger signal, and writes the metrics to stdout in influx line protocol,
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

	var tick <-chan time.Time
	if opts.PollInterval > 0 {
		t := time.NewTicker(opts.PollInterval)
		defer t.Stop()
		tick = t.C
	}
	enc := lineproto.NewEncoder(stdout)
	log := logger.New(logs, "")
	gatherOnce := func() error { return writeGather(g, enc, log) }
	for {
		// Stopping wins over anything queued.
		select {
		case <-ctx.Done():
			return nil
		default:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-pending:
		case <-tick:
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
		fold(pending, tick, opts.Triggers)
		if err := gatherOnce(); err != nil {
			return err
		}
	}
}

// fold takes whatever trigger is ready on each channel, without waiting.
func fold(pending <-chan struct{}, tick <-chan time.Time, signals <-chan os.Signal) {
	select {
	case <-pending:
	default:
	}
	select {
	case <-tick:
	default:
	}
	select {
	case <-signals:
	default:
	}
}

// writeGather gathers once and writes the metrics to the encoder's writer
// as they come.
func writeGather(g *gatherer, enc *lineproto.Encoder, log *logger.Logger) error {
	lw := &lineWriter{enc: enc, log: log}
	g.gather(lw.add)
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
	if w.err != nil {
		return
	}
	if err := w.enc.Encode(m); err != nil {
		w.log.Warn(err) // only this one metric is lost
		return
	}
	if w.enc.Len() >= flushBytes {
		w.flush()
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
