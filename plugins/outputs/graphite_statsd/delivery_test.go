package graphite_statsd

import (
	"context"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// newOutput returns an initialised, connected output for servers whose log
// goes to the returned buffer. Its lines are "seq.<i>.v <i> <time>".
func newOutput(t *testing.T, servers []string, opts func(*GraphiteStatsd)) (*GraphiteStatsd, *testbed.SyncBuffer) {
	t.Helper()
	logs := &testbed.SyncBuffer{}
	o := &GraphiteStatsd{
		Servers:    servers,
		Templates:  []string{"measurement.id.field"},
		Timeout:    config.Duration(2 * time.Second),
		Log:        logger.New(logger.NewSink(logs, telegraf.Debug), "outputs.graphite_statsd"),
		minBackoff: 20 * time.Millisecond,
		maxBackoff: 100 * time.Millisecond,
	}
	if opts != nil {
		opts(o)
	}
	if err := o.Init(); err != nil {
		t.Fatalf("Init: %v", err)
	}
	if err := o.Connect(); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { _ = o.Close() })
	return o, logs
}

func seqMetrics(from, to int, tm time.Time) []telegraf.Metric {
	var out []telegraf.Metric
	for i := from; i < to; i++ {
		out = append(out, metric.New("seq", map[string]string{"id": fmt.Sprint(i)}, map[string]any{"v": uint64(i)}, tm))
	}
	return out
}

func seqLines(from, to int, tm time.Time) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("seq.%d.v %d %d", i, i, tm.Unix()))
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var t0 = time.Unix(1700000000, 0)

func TestDeliversInOrderAndReusesTheConnection(t *testing.T) {
	s := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{})
	o, _ := newOutput(t, []string{s.Addr}, nil)
	for i := 0; i < 5; i++ {
		if err := o.Write(seqMetrics(i*100, i*100+100, t0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Lines(), seqLines(0, 500, t0); !slices.Equal(got, want) {
		t.Fatalf("got %d lines, want %d in order", len(got), len(want))
	}
	if n := s.Accepted(); n != 1 {
		t.Fatalf("%d connections for 5 writes, want 1", n)
	}
	if n := o.Undelivered(); n != 0 {
		t.Fatalf("Undelivered() = %d, want 0", n)
	}
}

func TestRefusedThenBackLosesNothing(t *testing.T) {
	addr := testbed.ClosedAddr(t)
	o, logs := newOutput(t, []string{addr}, nil)
	if err := o.Write(seqMetrics(0, 50, t0)); err != nil {
		t.Fatalf("Write with the server down returned %v, want nil (metrics kept)", err)
	}
	// Said by the next try, which tells whether it is still failing.
	if strings.Contains(logs.String(), "delivery failed") {
		t.Fatalf("the failure said before the next try:\n%s", logs)
	}
	if err := o.Write(seqMetrics(50, 80, t0)); err != nil {
		t.Fatal(err)
	}
	s := testbed.NewGraphiteSink(t, addr, testbed.SinkOptions{})
	waitFor(t, "the buffered metrics to arrive", func() bool {
		o.Write(nil) //nolint:errcheck // always nil here
		return len(s.Lines()) >= 80
	})
	if err := o.Write(seqMetrics(80, 100, t0)); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Lines(), seqLines(0, 100, t0); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if n := o.Undelivered(); n != 0 {
		t.Fatalf("Undelivered() = %d, want 0", n)
	}
	// One line for the failure, naming the server, the cause and the
	// check, one for the recovery.
	failed := "E! [outputs.graphite_statsd] delivery failed: " + addr + ": dial tcp " + addr + ": connect: connection refused (is carbon or statsd listening on " + addr + "?); 80 metrics wait for the next try"
	if strings.Count(logs.String(), "E! ") != 1 || !strings.Contains(logs.String(), failed) {
		t.Errorf("want one error line %q:\n%s", failed, logs)
	}
	if !strings.Contains(logs.String(), "I! [outputs.graphite_statsd] delivering to "+addr+" again, after ") {
		t.Errorf("no line for the recovery:\n%s", logs)
	}
}

func TestBackoffPacesRetries(t *testing.T) {
	o, logs := newOutput(t, []string{testbed.ClosedAddr(t)}, func(o *GraphiteStatsd) { o.minBackoff = time.Hour })
	o.Write(seqMetrics(0, 1, t0)) //nolint:errcheck // always nil here
	o.Write(nil)                  //nolint:errcheck // always nil here
	if !strings.Contains(logs.String(), "all servers are backing off") {
		t.Fatalf("a retry right after a failure dialled again:\n%s", logs)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	// The failure, the last try's and what became of the metric: one line.
	if got := strings.Count(logs.String(), "E! "); got != 1 || !strings.Contains(logs.String(), ": 1 metrics lost (set spool_dir") {
		t.Fatalf("%d error lines, want 1 saying the metric is lost:\n%s", got, logs)
	}
}

func TestServerThatNeverReadsTimesOut(t *testing.T) {
	s := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{Stalled: true})
	o, logs := newOutput(t, []string{s.Addr}, func(o *GraphiteStatsd) {
		o.Timeout = config.Duration(300 * time.Millisecond)
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.Write(seqMetrics(0, 20000, t0)) //nolint:errcheck // always nil here
		o.Close()                         //nolint:errcheck // checked by Undelivered
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Write and Close hung on a server that never reads")
	}
	if !regexp.MustCompile(`(took|acknowledged) nothing for 300ms`).MatchString(logs.String()) {
		t.Fatalf("no timeout logged:\n%s", logs)
	}
	if n := o.Undelivered(); n != 20000 {
		t.Fatalf("Undelivered() = %d, want all 20000: the server read nothing\n%s", n, logs)
	}
}

func TestServerClosingBetweenWritesLosesNothing(t *testing.T) {
	s := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{CloseAfter: 30, Faulty: 1})
	o, _ := newOutput(t, []string{s.Addr}, nil)
	o.Write(seqMetrics(0, 30, t0)) //nolint:errcheck // always nil here
	waitFor(t, "the server to close", func() bool { return s.Closed() == 1 })
	o.Write(seqMetrics(30, 60, t0)) //nolint:errcheck // always nil here
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Lines(), seqLines(0, 60, t0); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestServerClosingMidBatchIsResent(t *testing.T) {
	s := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{CloseAfter: 10, Faulty: 1})
	o, logs := newOutput(t, []string{s.Addr}, nil)
	o.Write(seqMetrics(0, 30, t0)) //nolint:errcheck // always nil here
	waitFor(t, "the server to close", func() bool { return s.Closed() == 1 })
	o.Write(seqMetrics(30, 60, t0)) //nolint:errcheck // always nil here
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	conns := s.Conns()
	if want := seqLines(0, 10, t0); !slices.Equal(conns[0], want) {
		t.Fatalf("first connection got %q, want %q", conns[0], want)
	}
	// The 20 lines the server never read are sent again, with the 10 it
	// did (a repeat of the same path and time is harmless in Graphite),
	// in order, in portions after the drop.
	var rest []string
	for _, c := range conns[1:] {
		rest = append(rest, c...)
	}
	if want := seqLines(0, 60, t0); !slices.Equal(rest, want) {
		t.Fatalf("later connections got %q\nwant %q\nlog:\n%s", rest, want, logs)
	}
}

func TestFailoverInOrder(t *testing.T) {
	s := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{})
	o, _ := newOutput(t, []string{testbed.ClosedAddr(t), s.Addr}, nil)
	o.Write(seqMetrics(0, 10, t0)) //nolint:errcheck // always nil here
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Lines(), seqLines(0, 10, t0); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestBufferLimitDropsOldest(t *testing.T) {
	addr := testbed.ClosedAddr(t)
	o, logs := newOutput(t, []string{addr}, func(o *GraphiteStatsd) { o.MetricBufferLimit = 5 })
	o.Write(seqMetrics(0, 8, t0)) //nolint:errcheck // always nil here
	if !strings.Contains(logs.String(), "W! [outputs.graphite_statsd] metric buffer full (metric_buffer_limit = 5): dropped the 3 oldest metrics") {
		t.Fatalf("no drop warning:\n%s", logs)
	}
	s := testbed.NewGraphiteSink(t, addr, testbed.SinkOptions{})
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Lines(), seqLines(3, 8, t0); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if n := o.Undelivered(); n != 3 {
		t.Fatalf("Undelivered() = %d, want the 3 dropped", n)
	}
}

func TestSpoolCarriesUndeliveredToTheNextRun(t *testing.T) {
	addr := testbed.ClosedAddr(t)
	dir := t.TempDir()
	spool := func(o *GraphiteStatsd) { o.SpoolDir = dir }
	old := time.Unix(1600000000, 0)

	first, _ := newOutput(t, []string{addr}, spool)
	first.Write(seqMetrics(0, 40, old)) //nolint:errcheck // always nil here
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := first.Undelivered(); n != 40 {
		t.Fatalf("first run: Undelivered() = %d, want 40", n)
	}
	files, _ := testbed.SpoolFiles(dir)
	if len(files) != 1 {
		t.Fatalf("spool files: %v, want one", files)
	}

	s := testbed.NewGraphiteSink(t, addr, testbed.SinkOptions{})
	second, _ := newOutput(t, []string{addr}, spool)
	second.Write(seqMetrics(40, 50, t0)) //nolint:errcheck // always nil here
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	want := append(seqLines(0, 40, old), seqLines(40, 50, t0)...)
	if got := s.Lines(); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if n := second.Undelivered(); n != 0 {
		t.Fatalf("second run: Undelivered() = %d, want 0", n)
	}
	if _, err := os.Stat(files[0]); !os.IsNotExist(err) {
		t.Fatalf("spool file still there after delivery: %v", err)
	}
}

func TestUDPPacksWholeLines(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	o, logs := newOutput(t, []string{pc.LocalAddr().String()}, func(o *GraphiteStatsd) {
		o.Transport = "udp"
		o.MaxPacketSize = 200
	})
	metrics := seqMetrics(0, 100, t0)
	metrics = append(metrics, metric.New("seq", map[string]string{"id": strings.Repeat("x", 300)}, map[string]any{"v": 1.0}, t0))
	o.Write(metrics) //nolint:errcheck // always nil here
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	packets := 0
	buf := make([]byte, 65536)
	want := seqLines(0, 100, t0)
	for len(got) < len(want) {
		_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d lines: %v", len(got), err)
		}
		packets++
		if n > 200 || buf[n-1] != '\n' {
			t.Fatalf("datagram of %d bytes %q: over 200 or a cut line", n, buf[:n])
		}
		got = append(got, strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n")...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if packets >= len(want)/3 {
		t.Fatalf("%d datagrams for %d lines: not packed", packets, len(want))
	}
	if !strings.Contains(logs.String(), "skipped 1 lines longer than 200 bytes") {
		t.Fatalf("no warning for the oversized line:\n%s", logs)
	}
}

func TestConnectAndCloseWithoutServer(t *testing.T) {
	o := &GraphiteStatsd{Servers: []string{testbed.ClosedAddr(t)}, Timeout: config.Duration(100 * time.Millisecond)}
	if err := o.Init(); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil { // Close before Connect
		t.Fatalf("Close: %v", err)
	}
	o = &GraphiteStatsd{Servers: []string{testbed.ClosedAddr(t)}, Timeout: config.Duration(100 * time.Millisecond)}
	if err := o.Init(); err != nil {
		t.Fatal(err)
	}
	if err := o.Connect(); err != nil {
		t.Fatalf("Connect with the server down: %v", err)
	}
	if err := o.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := o.Write(nil); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

func TestInitNamesTheOption(t *testing.T) {
	for _, tc := range []struct {
		opts func(*GraphiteStatsd)
		want string
	}{
		{func(o *GraphiteStatsd) { o.Servers = []string{"carbon.example"} }, "servers[0]"},
		{func(o *GraphiteStatsd) { o.Servers = []string{"a:2003", ":2003"} }, "servers[1]"},
		{func(o *GraphiteStatsd) { o.Servers = []string{"a:http"} }, "servers[0]"},
		{func(o *GraphiteStatsd) { o.Transport = "udp"; o.TLSCA = "/x" }, "tls"},
		{func(o *GraphiteStatsd) { o.Transport = "sctp" }, "transport"},
		{func(o *GraphiteStatsd) { o.Format = "influx" }, "format"},
		{func(o *GraphiteStatsd) { o.MaxPacketSize = 70000 }, "max_packet_size"},
		{func(o *GraphiteStatsd) { o.MaxPacketSize = 10 }, "max_packet_size"},
		{func(o *GraphiteStatsd) { o.Templates = []string{"a b c"} }, "templates"},
		{func(o *GraphiteStatsd) { o.Templates = []string{"a[ host.field"} }, "templates"},
		{func(o *GraphiteStatsd) { o.GraphiteStrictRegex = "[" }, "graphite_strict_sanitize_regex"},
		{func(o *GraphiteStatsd) { o.GraphiteTagSanitizeMode = "loose" }, "graphite_tag_sanitize_mode"},
		{func(o *GraphiteStatsd) { o.Timeout = -1 }, "timeout"},
		{func(o *GraphiteStatsd) { o.MetricBufferLimit = -1 }, "metric_buffer_limit"},
		{func(o *GraphiteStatsd) { o.SpoolLimit = -1 }, "spool_limit"},
		{func(o *GraphiteStatsd) { o.SpoolReplayRate = -1 }, "spool_replay_rate"},
		{func(o *GraphiteStatsd) { o.StatsdTags = true }, "statsd_tags"},
		{func(o *GraphiteStatsd) { o.TLSCert = "/nonexistent" }, "tls_cert"},
	} {
		o := &GraphiteStatsd{}
		tc.opts(o)
		err := o.Init()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Init() = %v, want an error naming %s", err, tc.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	o := newTestOutput(t, nil)
	if o.Format != "graphite" || o.Transport != "tcp" || o.Servers[0] != "localhost:2003" ||
		o.MaxPacketSize != 1432 || o.MetricBufferLimit != defaultBufferLimit ||
		o.SpoolLimit != defaultSpoolLimit || o.SpoolReplayRate != defaultReplayRate {
		t.Fatalf("defaults: %+v", o)
	}
	o = newTestOutput(t, func(o *GraphiteStatsd) { o.Format = "statsd" })
	if o.Transport != "udp" || o.Servers[0] != "localhost:8125" {
		t.Fatalf("statsd defaults: transport %s servers %v", o.Transport, o.Servers)
	}
	_ = context.Background
}

func TestLinesResetAfterTheServerClosedAreResent(t *testing.T) {
	// The server reads lines 0-9, then closes with nothing unread: a FIN.
	// Lines 10-19 were on their way (the FIN came in the middle of a
	// write): its kernel answers them with a reset, which a read of the
	// connection never shows, as the FIN came first.
	s := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{CloseAfter: 10, Faulty: 1})
	o, logs := newOutput(t, []string{s.Addr}, nil)
	o.Write(seqMetrics(0, 10, t0)) //nolint:errcheck // always nil here
	waitFor(t, "the server to close", func() bool { return s.Closed() == 1 })
	o.mu.Lock()
	l := o.link
	if l == nil {
		o.mu.Unlock()
		t.Fatal("no connection is open")
	}
	// What the next write's check would do, but keeping the connection:
	// what is sent next is written after the FIN.
	o.poll(l) //nolint:errcheck // loopback TCP
	o.confirmKept(l, len(l.kept))
	o.buf.Add(seqMetrics(10, 20, t0))
	err := o.sendLines(context.Background(), l)
	conn := l.tcp
	o.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reset", func() bool { return tcpState(t, conn) == 7 }) // TCP_CLOSE

	o.Write(seqMetrics(20, 30, t0)) //nolint:errcheck // always nil here
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Lines(), seqLines(0, 30, t0); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q\nlog:\n%s", got, want, logs)
	}
}

// tcpState returns the state of conn's socket (the first byte of Linux's
// struct tcp_info).
func tcpState(t *testing.T, conn net.Conn) int {
	t.Helper()
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_INFO)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	return v & 0xff
}
