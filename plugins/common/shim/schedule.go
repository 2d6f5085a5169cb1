package shim

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
)

// clock tells when each input is due, on its own schedule, as Telegraf's
// agent does: every interval, on multiples of it when aligned (round_interval),
// shifted by the offset and delayed by a random jitter each time. An input
// that comes due while it is still waiting for its last turn is queued once.
type clock struct {
	due    chan int // index of an input that is due
	queued []atomic.Bool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startClock starts one timer per schedule; interval, when positive,
// replaces every schedule's interval (-poll_interval).
func startClock(schedules []config.Schedule, interval time.Duration) *clock {
	ctx, cancel := context.WithCancel(context.Background())
	c := &clock{due: make(chan int, len(schedules)), queued: make([]atomic.Bool, len(schedules)), cancel: cancel}
	now := time.Now()
	for i, s := range schedules {
		if interval > 0 {
			s.Interval = interval
		}
		c.wg.Go(func() { c.run(ctx, i, s, now) })
	}
	return c
}

func (c *clock) run(ctx context.Context, i int, s config.Schedule, start time.Time) {
	next := firstTick(s, start)
	for {
		t := time.NewTimer(time.Until(next) + jitter(s.Jitter))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !c.queued[i].Swap(true) {
			c.due <- i
		}
		// The next tick is the next one after now: a late gather does
		// not make the clock hurry to catch up.
		for next = next.Add(s.Interval); !next.After(time.Now()); next = next.Add(s.Interval) {
		}
	}
}

// firstTick is the first time an input gathers: at once (after its offset)
// or, aligned, on the next multiple of the interval after start, a little
// later than start so that the first interval is never almost empty.
func firstTick(s config.Schedule, start time.Time) time.Time {
	first := start
	if s.Align && s.Interval > 0 {
		t := start.Add(s.Interval / 100)
		if first = t.Truncate(s.Interval); first.Before(t) {
			first = first.Add(s.Interval)
		}
	}
	return first.Add(s.Offset)
}

func jitter(most time.Duration) time.Duration {
	if most <= 0 {
		return 0
	}
	return rand.N(most)
}

// taken marks input i as no longer queued: its gather is starting.
func (c *clock) taken(i int) { c.queued[i].Store(false) }

// stop stops every timer.
func (c *clock) stop() {
	c.cancel()
	c.wg.Wait()
}

// collect returns the inputs due now: first, and any others already
// queued, marked as taken.
func (c *clock) collect(first int, n int) []bool {
	due := make([]bool, n)
	due[first] = true
	c.taken(first)
	for {
		select {
		case i := <-c.due:
			due[i] = true
			c.taken(i)
		default:
			return due
		}
	}
}

// collectAll marks every queued input as taken: a gather of every input is
// starting.
func (c *clock) collectAll() {
	for {
		select {
		case i := <-c.due:
			c.taken(i)
		default:
			return
		}
	}
}
