package buffer

import (
	"testing"

	"github.com/influxdata/telegraf"
)

// counted is a metric that counts its releases.
type counted struct {
	telegraf.Metric
	released int
}

func (c *counted) Release() { c.released++ }

func countedSeq(from, to int) ([]telegraf.Metric, []*counted) {
	var ms []telegraf.Metric
	var cs []*counted
	for _, m := range seq(from, to) {
		c := &counted{Metric: m}
		ms = append(ms, c)
		cs = append(cs, c)
	}
	return ms, cs
}

// releases returns how often each metric was released.
func releases(cs []*counted) []int {
	out := make([]int, len(cs))
	for i, c := range cs {
		out[i] = c.released
	}
	return out
}

func wantReleased(t *testing.T, step string, cs []*counted, want func(i int) int) {
	t.Helper()
	for i, c := range cs {
		if c.released != want(i) {
			t.Fatalf("%s: releases %v", step, releases(cs))
		}
	}
}

// TestMetricsAreReleasedOnceWhenTheyLeave: a metric is released once, when
// it leaves the buffer for good (confirmed, delivered, spooled, dropped or
// lost at Close), never while it may be sent again.
func TestMetricsAreReleasedOnceWhenTheyLeave(t *testing.T) {
	log, _ := newLog()
	b := New(100, nil, log)
	ms, cs := countedSeq(0, 10)
	b.Add(ms)
	b.Take(6)
	b.Acked(4)
	wantReleased(t, "in flight and acknowledged", cs, func(int) int { return 0 })
	b.Retry()
	wantReleased(t, "retried", cs, func(int) int { return 0 })
	b.Take(6)
	b.Acked(4)
	b.Confirm(3)
	wantReleased(t, "3 confirmed", cs, func(i int) int { return b2i(i < 3) })
	b.Delivered(2) // UDP: the oldest 2 held go
	wantReleased(t, "2 more delivered", cs, func(i int) int { return b2i(i < 5) })
	b.Confirm(-1)
	wantReleased(t, "every acknowledged one confirmed", cs, func(i int) int { return b2i(i < 6) })
	_, _, _ = b.Close()
	wantReleased(t, "the rest lost at Close", cs, func(int) int { return 1 })
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestMetricsAreReleasedWhenDroppedOrSpooled(t *testing.T) {
	log, _ := newLog()
	b := New(5, nil, log)
	ms, cs := countedSeq(0, 8)
	b.Add(ms)
	wantReleased(t, "3 dropped over the limit", cs, func(i int) int { return b2i(i < 3) })

	spool, err := NewSpool(t.TempDir(), "out", 0, log)
	if err != nil {
		t.Fatal(err)
	}
	b = New(5, spool, log)
	ms, cs = countedSeq(0, 8)
	b.Add(ms)
	wantReleased(t, "3 spooled over the limit", cs, func(i int) int { return b2i(i < 3) })
	b.Take(2)
	_, _, _ = b.Close()
	wantReleased(t, "the rest spooled at Close", cs, func(int) int { return 1 })
}
