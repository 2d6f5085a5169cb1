package graphite_statsd

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// TestReplayPace: lines go at most rate a second, counted from the
// first; a cancelled context ends the wait. (Only lower bounds are
// checked: a wait takes at least its time on any machine.)
func TestReplayPace(t *testing.T) {
	p := replayPace{rate: 20000}
	start := time.Now()
	for range 5 {
		if err := p.wait(context.Background(), 2000); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("10,000 lines at 20,000 a second went in %s, want at least 400 ms (the first 2,000 go at once)", took)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.wait(ctx, 1_000_000); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled wait returned %v", err)
	}
	p.reset()
	if err := p.wait(ctx, 1_000_000); err != nil {
		t.Errorf("the first lines after reset waited: %v", err)
	}
	unbound := replayPace{}
	if err := unbound.wait(ctx, 1_000_000); err != nil {
		t.Errorf("rate 0 waited: %v", err)
	}
}

// TestSpoolBacklogIsPaced: the next run sends a spooled backlog at
// spool_replay_rate, then its own metrics, and delivers them all.
func TestSpoolBacklogIsPaced(t *testing.T) {
	addr := testbed.ClosedAddr(t)
	dir := t.TempDir()
	old := time.Unix(1600000000, 0)
	first, _ := newOutput(t, []string{addr}, func(o *GraphiteStatsd) { o.SpoolDir = dir })
	first.Write(seqMetrics(0, 3000, old)) //nolint:errcheck // always nil here
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if n := first.Undelivered(); n != 3000 {
		t.Fatalf("first run: Undelivered() = %d, want 3000", n)
	}

	s := testbed.NewGraphiteSink(t, addr, testbed.SinkOptions{})
	second, logs := newOutput(t, []string{addr}, func(o *GraphiteStatsd) {
		o.SpoolDir = dir
		o.SpoolReplayRate = 5000
	})
	start := time.Now()
	second.Write(seqMetrics(3000, 3100, t0)) //nolint:errcheck // always nil here
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if n := second.Undelivered(); n != 0 {
		t.Fatalf("second run: Undelivered() = %d\n%s", n, logs)
	}
	// The first batch of 256 goes at once; 2,744 lines at 5,000 a second.
	if took < 540*time.Millisecond {
		t.Errorf("a backlog of 3,000 lines at spool_replay_rate = 5000 went in %s, want at least 540 ms", took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	want := append(seqLines(0, 3000, old), seqLines(3000, 3100, t0)...)
	if got := s.Lines(); !slices.Equal(sortedLines(got), sortedLines(want)) {
		t.Errorf("Graphite has %d lines, want the backlog's 3,000 and the run's 100", len(got))
	}
}
