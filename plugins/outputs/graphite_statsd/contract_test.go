package graphite_statsd

import (
	"context"
	"crypto/tls"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// The delivery contract, against the faults of a real carbon: what the
// peer's TCP stack acknowledged is delivered; a server that stops reading
// is given up on after timeout without progress, and everything it did
// not confirm is kept; a slow one gets everything.

// errorLines returns the log's error and warning lines.
func errorLines(logs string) []string {
	return regexp.MustCompile(`(?m)^[EW]! .*$`).FindAllString(logs, -1)
}

func sortedLines(ls []string) []string {
	ls = slices.Clone(ls)
	slices.Sort(ls)
	return slices.Compact(ls)
}

func TestLingeringServerCountsAsDeliveredAtOnce(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		name := "tcp"
		if withTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			opts := testbed.SinkOptions{Linger: true}
			var p *testPKI
			if withTLS {
				p = newTestPKI(t)
				opts.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
			}
			s := testbed.NewGraphiteSink(t, "127.0.0.1:0", opts)
			o, logs := newOutput(t, []string{s.Addr}, func(o *GraphiteStatsd) {
				// Waiting for the server's close would take all 30 s.
				o.Timeout = config.Duration(30 * time.Second)
				if withTLS {
					o.TLSCA = p.caFile
				}
			})
			o.Write(seqMetrics(0, 20000, t0)) //nolint:errcheck // always nil here
			start := time.Now()
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			t.Logf("Close took %s", took.Round(time.Millisecond))
			if took >= 30*time.Second {
				t.Errorf("Close waited the whole timeout for a server that keeps its side open")
			}
			if n := o.Undelivered(); n != 0 {
				t.Errorf("Undelivered() = %d, want 0: every line was acknowledged", n)
			}
			if e := errorLines(logs.String()); len(e) > 0 {
				t.Errorf("error lines for a server that read everything: %q", e)
			}
			waitFor(t, "the sink to read every line", func() bool { return len(s.Lines()) >= 20000 })
			if got, want := s.Lines(), seqLines(0, 20000, t0); !slices.Equal(got, want) {
				t.Errorf("the sink read %d lines, want the 20000 in order", len(got))
			}
		})
	}
}

func TestSlowServerThatKeepsReadingGetsEverything(t *testing.T) {
	// About 580 KB at 150 KB/s through a 64 KB window: over three
	// times the timeout in all, but the server takes something many
	// times a second, well within it even on a busy machine.
	s := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{BytesPerSecond: 150 << 10, ReceiveBuffer: 64 << 10})
	o, logs := newOutput(t, []string{s.Addr}, func(o *GraphiteStatsd) {
		o.Timeout = config.Duration(time.Second)
	})
	start := time.Now()
	o.Write(seqMetrics(0, 20000, t0)) //nolint:errcheck // always nil here
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("delivered in %s with timeout 1s", time.Since(start).Round(time.Millisecond))
	if n := o.Undelivered(); n != 0 {
		t.Errorf("Undelivered() = %d, want 0\n%s", n, logs)
	}
	if e := errorLines(logs.String()); len(e) > 0 {
		t.Errorf("error lines for a slow server: %q", e)
	}
	if got, want := s.Lines(), seqLines(0, 20000, t0); !slices.Equal(got, want) {
		t.Errorf("the sink read %d lines, want the 20000 in order", len(got))
	}
}

func TestStalledServerLosesNothingAcrossTwoRuns(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		name := "tcp"
		if withTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			var p *testPKI
			opts := testbed.SinkOptions{Stalled: true}
			if withTLS {
				p = newTestPKI(t)
				opts.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
			}
			stalled := testbed.NewGraphiteSink(t, "127.0.0.1:0", opts)
			spool := t.TempDir()
			setup := func(o *GraphiteStatsd) {
				o.Timeout = config.Duration(300 * time.Millisecond)
				o.SpoolDir = spool
				if withTLS {
					o.TLSCA = p.caFile
				}
			}
			o, logs := newOutput(t, []string{stalled.Addr}, setup)
			// Enough to fill both kernels' buffers: 20 MB of lines.
			const n = 300000
			o.Write(seqMetrics(0, n, t0)) //nolint:errcheck // always nil here
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			if got := o.Undelivered(); got != n {
				t.Errorf("Undelivered() = %d, want %d: the server confirmed nothing\n%s", got, n, logs)
			}
			if !strings.Contains(logs.String(), "undelivered metrics saved to "+spool) {
				t.Fatalf("nothing spooled:\n%s", logs)
			}
			// The server comes back after a crash (what it held is gone);
			// the next run sends the spool.
			stalled.Stop()
			opts.Stalled = false
			good := testbed.NewGraphiteSink(t, stalled.Addr, opts)
			next, logs2 := newOutput(t, []string{stalled.Addr}, setup)
			if err := next.Close(); err != nil {
				t.Fatal(err)
			}
			if got := next.Undelivered(); got != 0 {
				t.Errorf("second run: Undelivered() = %d\n%s", got, logs2)
			}
			if got, want := sortedLines(good.Lines()), sortedLines(seqLines(0, n, t0)); !slices.Equal(got, want) {
				t.Errorf("after the second run the server has %d distinct lines, want %d", len(got), len(want))
			}
			if files, _ := testbed.SpoolFiles(spool); len(files) != 0 {
				t.Errorf("spool files left: %v", files)
			}
		})
	}
}

// TestAddDoesNotWaitOutAStalledWrite: below the limit, Add waits at most
// a brief pause in progress, never a write's whole timeout.
func TestAddDoesNotWaitOutAStalledWrite(t *testing.T) {
	s := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{Stalled: true})
	o, _ := newOutput(t, []string{s.Addr}, func(o *GraphiteStatsd) {
		o.Timeout = config.Duration(5 * time.Second)
		o.MetricBufferLimit = 1000000
	})
	o.Add(seqMetrics(0, 300000, t0))
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		o.Write(nil) //nolint:errcheck // always nil here
	}()
	last, since := -1, time.Now()
	waitFor(t, "the write to block on the stalled server", func() bool {
		if p := o.buf.Pending(); p != last {
			last, since = p, time.Now()
		}
		// A second without progress: the write is blocked, not merely
		// descheduled on a busy machine; 4 s of its timeout remain.
		return s.Accepted() == 1 && time.Since(since) > time.Second
	})
	for i := 1; i <= 10; i++ {
		o.Add(seqMetrics(300000+i*1000, 301000+i*1000, t0))
	}
	select {
	case <-writing:
		t.Fatal("the write to a stalled server ended before its timeout")
	default:
	}
	if got := o.buf.Pending(); got != last+10000 {
		t.Fatalf("%d metrics pending after ten Adds of 1000 during the write, want %d", got, last+10000)
	}
}

func TestServerResettingAfterAcknowledgingIsResent(t *testing.T) {
	// The server reads 10 lines of each connection and closes with the
	// rest unread: its kernel acknowledged them, then reset. They go
	// again on the next connection.
	s := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{CloseAfter: 10, Faulty: 1})
	spool := t.TempDir()
	o, logs := newOutput(t, []string{s.Addr}, func(o *GraphiteStatsd) { o.SpoolDir = spool })
	o.Write(seqMetrics(0, 100, t0)) //nolint:errcheck // always nil here
	waitFor(t, "the server to close", func() bool { return s.Closed() == 1 })
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := sortedLines(s.Lines()), sortedLines(seqLines(0, 100, t0)); !slices.Equal(got, want) {
		t.Fatalf("the server has %d distinct lines, want %d\n%s", len(got), len(want), logs)
	}
	if o.Undelivered() != 0 {
		t.Fatalf("Undelivered() = %d\n%s", o.Undelivered(), logs)
	}
}

func TestInterruptEndsAStalledDeliveryWithinTimeout(t *testing.T) {
	s := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{Stalled: true})
	spool := t.TempDir()
	o, logs := newOutput(t, []string{s.Addr}, func(o *GraphiteStatsd) {
		o.Timeout = config.Duration(time.Second)
		o.SpoolDir = spool
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.Write(seqMetrics(0, 300000, t0)) //nolint:errcheck // always nil here
	}()
	waitFor(t, "the write to block", func() bool { return s.Accepted() == 1 })
	o.Interrupt()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the write went on after Interrupt")
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if o.Undelivered() != 300000 {
		t.Fatalf("Undelivered() = %d\n%s", o.Undelivered(), logs)
	}
	files, _ := testbed.SpoolFiles(spool)
	var lines int
	for _, f := range files {
		l, _ := testbed.SpoolFileLines(f)
		lines += len(l)
	}
	if lines != 300000 {
		t.Fatalf("%d lines spooled in %v, want 300000", lines, files)
	}
}

func TestFullBufferWaitsForASlowServerInsteadOfDropping(t *testing.T) {
	s := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{BytesPerSecond: 1 << 20, ReceiveBuffer: 64 << 10})
	o, logs := newOutput(t, []string{s.Addr}, func(o *GraphiteStatsd) {
		o.Timeout = config.Duration(time.Second)
		o.MetricBufferLimit = 1000
	})
	stop := make(chan struct{})
	delivering := make(chan struct{})
	go func() { // the delivery loop a process runs beside Add
		defer close(delivering)
		for {
			select {
			case <-stop:
				return
			case <-o.Ready():
				o.Write(nil) //nolint:errcheck // always nil here
			}
		}
	}()
	for i := 0; i < 20; i++ {
		o.Add(seqMetrics(i*1000, (i+1)*1000, t0))
	}
	close(stop)
	<-delivering
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if n := o.Undelivered(); n != 0 {
		t.Fatalf("Undelivered() = %d: a full buffer dropped metrics a slow server would have taken\n%s", n, logs)
	}
	if got, want := s.Lines(), seqLines(0, 20000, t0); !slices.Equal(got, want) {
		t.Fatalf("the sink read %d lines, want the 20000 in order", len(got))
	}
}

func TestAServerThatDropsAfterNLinesGetsEverythingInPortions(t *testing.T) {
	// Each connection is read for 10 lines, then reset: a live server,
	// not a dead one. A long run's delivery goes on in portions small
	// enough for it, each confirmed by its clean close, with no failure
	// and no backoff.
	s := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{CloseAfter: 10})
	o, logs := newOutput(t, []string{s.Addr}, nil)
	want := sortedLines(seqLines(0, 2000, t0))
	o.Write(seqMetrics(0, 2000, t0)) //nolint:errcheck // always nil here
	// The drop shows at the latest at the next write, as in a long run.
	waitFor(t, "every line to arrive", func() bool {
		o.Write(nil) //nolint:errcheck // always nil here
		return slices.Equal(sortedLines(s.Lines()), want)
	})
	if strings.Contains(logs.String(), "delivery failed") {
		t.Fatalf("a failure was logged for a server that took every portion\n%s", logs)
	}
	t.Logf("%d connections, %d lines with repeats", s.Accepted(), len(s.Lines()))
}

func TestLastTryResendsInPortionsToAServerThatDropsAfterNLines(t *testing.T) {
	// Every connection is reset after 100 lines: what it acknowledged
	// cannot be told read from unread, so the last try halves what it
	// sends until a portion fits and the server closes cleanly.
	s := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{CloseAfter: 100})
	o, logs := newOutput(t, []string{s.Addr}, nil)
	o.Add(seqMetrics(0, 1000, t0))
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if n := o.Undelivered(); n != 0 {
		t.Fatalf("Undelivered() = %d\n%s", n, logs)
	}
	if got, want := sortedLines(s.Lines()), sortedLines(seqLines(0, 1000, t0)); !slices.Equal(got, want) {
		t.Fatalf("the server has %d distinct lines, want %d\n%s", len(got), len(want), logs)
	}
	t.Logf("%d connections, %d lines with repeats", s.Accepted(), len(s.Lines()))
}

func TestLastTryDoesNotMistakeAStalledServerForOneThatDrops(t *testing.T) {
	s := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{Stalled: true})
	o, logs := newOutput(t, []string{s.Addr}, func(o *GraphiteStatsd) {
		o.Timeout = config.Duration(300 * time.Millisecond)
	})
	o.Add(seqMetrics(0, 300000, t0))
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if n := o.Undelivered(); n != 300000 {
		t.Fatalf("Undelivered() = %d, want all 300000: a server that stopped reading confirmed nothing\n%s", n, logs)
	}
	if s.Accepted() != 1 {
		t.Fatalf("%d connections: the last try sent portions to a stalled server", s.Accepted())
	}
}

func TestAddAndWriteBeforeConnectSayWhatIsLost(t *testing.T) {
	logs := &testbed.SyncBuffer{}
	o := &GraphiteStatsd{Servers: []string{"127.0.0.1:2003"}, Log: logger.New(logger.NewSink(logs, telegraf.Debug), "outputs.graphite_statsd")}
	if err := o.Init(); err != nil {
		t.Fatal(err)
	}
	o.Add(seqMetrics(0, 3, t0))
	if !strings.Contains(logs.String(), "E! [outputs.graphite_statsd] 3 metrics added before Connect are lost") {
		t.Fatalf("log:\n%s", logs)
	}
	if err := o.Write(seqMetrics(0, 3, t0)); err == nil || !strings.Contains(err.Error(), "before Connect") {
		t.Fatalf("Write before Connect = %v", err)
	}
	if o.Ready() != nil {
		t.Fatal("Ready before Connect is a channel")
	}
}
