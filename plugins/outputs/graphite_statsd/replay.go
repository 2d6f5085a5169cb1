package graphite_statsd

import (
	"context"
	"time"
)

// replayPace bounds how fast metrics loaded from the spool are sent: a
// backlog of many gathers, sent as fast as the socket takes it by every
// host of a fleet at once, overflows a relay's queues (carbon-relay drops
// what overflows after acknowledging it). Lines of the backlog are sent at
// most rate a second, counted from the first; what comes after the
// backlog goes as fast as the peer takes it.
type replayPace struct {
	rate  int // lines a second; 0: no bound
	start time.Time
	lines int64
}

// wait blocks until lines more lines of the backlog may go, or ctx ends
// (then it returns ctx's error).
func (p *replayPace) wait(ctx context.Context, lines int) error {
	if p.rate <= 0 || lines == 0 {
		return nil
	}
	now := time.Now()
	if p.start.IsZero() {
		p.start = now
	}
	p.lines += int64(lines)
	due := p.start.Add(time.Duration(float64(p.lines-int64(lines)) / float64(p.rate) * float64(time.Second)))
	if !due.After(now) {
		return nil
	}
	t := time.NewTimer(due.Sub(now))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// reset starts counting anew: the backlog is sent, or delivery stopped.
func (p *replayPace) reset() { p.start, p.lines = time.Time{}, 0 }
