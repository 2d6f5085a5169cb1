package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// graphiteLines returns n plaintext lines "sink.<i> <i> 1700000000\n".
func graphiteLines(from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("sink.%07d %d 1700000000", i, i))
	}
	return out
}

func joinLines(lines []string) []byte {
	return []byte(strings.Join(lines, "\n") + "\n")
}

func dialSink(t *testing.T, s *GraphiteSink) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func drainSink(t *testing.T, s *GraphiteSink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Drain(ctx); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eightMB is more than the kernel buffers of a loopback connection hold.
var eightMB = joinLines(graphiteLines(0, 8<<20/27))

// writeUntilBlocked writes b with a 1 s deadline and expects the deadline
// to stop it; it returns how much was written.
func writeUntilBlocked(t *testing.T, c net.Conn, b []byte) int {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(time.Second)) // checked by the write
	n, err := c.Write(b)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writing %d bytes to a sink that does not read: %d written, %v; want the deadline exceeded", len(b), n, err)
	}
	c.SetWriteDeadline(time.Time{}) // a plain write follows
	return n
}

func TestGraphiteSinkReadsEveryLine(t *testing.T) {
	s := NewGraphiteSink(t, "127.0.0.1:0", SinkOptions{})
	c := dialSink(t, s)
	want := graphiteLines(0, 3)
	if _, err := c.Write(append(joinLines(want), "sink.cut 1"...)); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after CloseWrite: %v, want EOF: the sink closes after the client", err)
	}
	drainSink(t, s)
	if got := s.Lines(); !slices.Equal(got, want) {
		t.Errorf("Lines() = %q, want %q", got, want)
	}
	if got := s.Conns(); len(got) != 1 || !slices.Equal(got[0], want) {
		t.Errorf("Conns() = %q", got)
	}
	waitFor(t, "the close", func() bool { return s.Closed() == 1 })
	if s.Accepted() != 1 || s.EOFs() != 1 || s.PartialLines() != 1 {
		t.Errorf("accepted %d, EOFs %d, partial lines %d; want 1 each", s.Accepted(), s.EOFs(), s.PartialLines())
	}
}

func TestGraphiteSinkStalled(t *testing.T) {
	s := NewGraphiteSink(t, "127.0.0.1:0", SinkOptions{Stalled: true})
	c := dialSink(t, s)
	n := writeUntilBlocked(t, c, eightMB)
	if _, b := s.Total(); b != 0 {
		t.Fatalf("a stalled sink read %d bytes", b)
	}
	t.Logf("%d bytes written before the write blocked", n)
	s.Resume()
	if _, err := c.Write(eightMB[n:]); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	drainSink(t, s)
	if lines, b := s.Total(); b != int64(len(eightMB)) || len(s.Lines()) != int(lines) {
		t.Errorf("after Resume read %d lines, %d bytes; want all %d bytes", lines, b, len(eightMB))
	}
}

func TestGraphiteSinkPauseAfter(t *testing.T) {
	s := NewGraphiteSink(t, "127.0.0.1:0", SinkOptions{PauseAfter: 100})
	c := dialSink(t, s)
	n := writeUntilBlocked(t, c, eightMB)
	if got := len(s.Lines()); got != 100 {
		t.Fatalf("%d lines read before the pause, want 100", got)
	}
	s.Resume()
	if _, err := c.Write(eightMB[n:]); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	drainSink(t, s)
	if got, want := len(s.Lines()), strings.Count(string(eightMB), "\n"); got != want {
		t.Errorf("%d lines after Resume, want %d", got, want)
	}
}

func TestGraphiteSinkCloseAfter(t *testing.T) {
	s := NewGraphiteSink(t, "127.0.0.1:0", SinkOptions{CloseAfter: 10, Faulty: 1})
	all := graphiteLines(0, 30)
	c := dialSink(t, s)
	if _, err := c.Write(joinLines(all)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the client read %v, want a reset: lines were left unread", err)
	}
	if got := s.Lines(); !slices.Equal(got, all[:10]) {
		t.Errorf("Lines() = %q, want the first 10", got)
	}
	if _, b := s.Total(); b != int64(len(joinLines(all[:10]))) {
		t.Errorf("%d bytes read, want exactly the %d of 10 lines", b, len(joinLines(all[:10])))
	}
	waitFor(t, "the close", func() bool { return s.Closed() == 1 })
	if s.EOFs() != 0 {
		t.Errorf("EOFs() = %d, want 0", s.EOFs())
	}

	// Faulty: 1: the next connection is read to its end.
	c = dialSink(t, s)
	if _, err := c.Write(joinLines(all)); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	drainSink(t, s)
	if got := s.Conns(); len(got) != 2 || !slices.Equal(got[1], all) {
		t.Errorf("second connection: %d lines, want all %d", len(got[1]), len(all))
	}
}

func TestGraphiteSinkLinger(t *testing.T) {
	s := NewGraphiteSink(t, "127.0.0.1:0", SinkOptions{Linger: true})
	c := dialSink(t, s)
	want := graphiteLines(0, 5)
	if _, err := c.Write(joinLines(want)); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	waitFor(t, "the sink to read the client's EOF", func() bool { return s.EOFs() == 1 })
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after CloseWrite: %v, want no EOF within 300 ms", err)
	}
	if got := s.Lines(); !slices.Equal(got, want) || s.Closed() != 0 {
		t.Errorf("Lines() = %q, Closed() = %d; want every line and the connection open", got, s.Closed())
	}
	drainSink(t, s) // the connection was read to its end
	s.Stop()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read after Stop: %v, want a reset", err)
	}
}

func TestGraphiteSinkBytesPerSecond(t *testing.T) {
	const rate = 40 << 10
	s := NewGraphiteSink(t, "127.0.0.1:0", SinkOptions{BytesPerSecond: rate})
	data := joinLines(graphiteLines(0, 100<<10/27))
	c := dialSink(t, s)
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	// The sink must never read faster than its rate; slower is the
	// machine's doing, and only no progress at all for 10 s is a fault.
	start := time.Now()
	var last int64 = -1
	progress := start
	for {
		time.Sleep(500 * time.Millisecond)
		_, b := s.Total()
		if b == int64(len(data)) {
			break
		}
		if b > last {
			last, progress = b, time.Now()
		} else if time.Since(progress) > 10*time.Second {
			t.Fatalf("no progress in 10 s: %d bytes read", b)
		}
		if el := time.Since(start).Seconds(); float64(b) > 2*rate*el+rate/4 {
			t.Fatalf("%d bytes read in %.1f s at %d bytes a second", b, el, rate)
		}
	}
	took := time.Since(start)
	t.Logf("%d bytes at %d bytes a second read in %s", len(data), rate, took.Round(time.Millisecond))
	if exp := time.Duration(float64(len(data)) / rate * float64(time.Second)); took < exp*6/10 {
		t.Errorf("%d bytes read in %s, want at least %s at %d bytes a second", len(data), took, exp*6/10, rate)
	}
}

func TestGraphiteSinkStopAndRestart(t *testing.T) {
	s := NewGraphiteSink(t, "127.0.0.1:0", SinkOptions{})
	c := dialSink(t, s)
	if _, err := c.Write(joinLines(graphiteLines(0, 1))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first line", func() bool { return len(s.Lines()) == 1 })
	s.Stop()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read after Stop: %v, want a reset", err)
	}
	if _, err := net.DialTimeout("tcp", s.Addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial after Stop: %v, want refused", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	c = dialSink(t, s)
	if _, err := c.Write(joinLines(graphiteLines(1, 2))); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	drainSink(t, s)
	if got := s.Lines(); !slices.Equal(got, graphiteLines(0, 2)) || s.Accepted() != 2 {
		t.Errorf("Lines() = %q, Accepted() = %d: want both lines and 2 connections", got, s.Accepted())
	}

	// A new sink on the same address, as a restarted server.
	s.Stop()
	again := NewGraphiteSink(t, s.Addr, SinkOptions{})
	c = dialSink(t, again)
	if _, err := c.Write(joinLines(graphiteLines(2, 3))); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	drainSink(t, again)
	if got := again.Lines(); !slices.Equal(got, graphiteLines(2, 3)) {
		t.Errorf("new sink on %s: Lines() = %q", s.Addr, got)
	}
}

func TestGraphiteSinkKeepCountsAndTotals(t *testing.T) {
	counts := NewGraphiteSink(t, "127.0.0.1:0", SinkOptions{Keep: KeepCounts, Marker: ".mark"})
	totals := NewGraphiteSink(t, "127.0.0.1:0", SinkOptions{Keep: KeepTotals})
	text := "a.b 1 100\na.mark 1 100\na.b 2 101\nno-timestamp\na.b 3 x\na.mark 2 101\n"
	for _, s := range []*GraphiteSink{counts, totals} {
		c := dialSink(t, s)
		if _, err := io.WriteString(c, text); err != nil {
			t.Fatal(err)
		}
		c.CloseWrite()
		drainSink(t, s)
		if lines, b := s.Total(); lines != 6 || b != int64(len(text)) || len(s.Lines()) != 0 {
			t.Errorf("Total() = %d lines, %d bytes; %d kept; want 6, %d, none", lines, b, len(s.Lines()), len(text))
		}
	}
	got := counts.Counts()
	if got.Lines[100] != 2 || got.Lines[101] != 2 || got.Marks[100] != 1 || got.Marks[101] != 1 ||
		got.Malformed != 2 || got.MalformedExample != "a.b 3 x" {
		t.Errorf("Counts() = %+v", got)
	}
}

func TestAcceptQueueCountsUnacceptedConnections(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 1; i <= 2; i++ {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		waitFor(t, fmt.Sprint(i, " queued connections"), func() bool { return acceptQueue(l.(*net.TCPListener)) == i })
	}
}
