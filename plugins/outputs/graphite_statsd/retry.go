package graphite_statsd

import (
	"context"
	cryptotls "crypto/tls"
	"time"
)

// target is one server and its backoff.
type target struct {
	addr     string
	tls      *cryptotls.Config
	failures int
	retryAt  time.Time
}

// fail schedules the next dial with exponential backoff, so a dead server
// is not hammered.
func (t *target) fail(minB, maxB time.Duration) time.Duration {
	t.failures++
	d := minB
	for i := 1; i < t.failures && d < maxB; i++ {
		d *= 2
	}
	d = min(d, maxB)
	t.retryAt = time.Now().Add(d)
	return d
}

// attempt is how a failed delivery went, for the portions.
type attempt struct {
	carried int  // metrics it took to send
	dropped bool // the server acknowledged some, then reset the connection
}

// flush tries to deliver what the buffer holds, in order, to the first
// server that takes it. final is Close's last try: it ignores backoff, and
// on TCP waits until the server acknowledged everything, then closes.
func (o *GraphiteStatsd) flush(ctx context.Context, final bool) {
	defer o.reportSkipped()
	if o.link != nil && o.Transport == transportTCP {
		o.check(o.link)
	}
	if o.buf.Pending() == 0 && (o.link == nil || !final) {
		return
	}
	var causes []string
	tried := false
	for _, t := range o.order() {
		if !final && o.link == nil && time.Now().Before(t.retryAt) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if !tried && !final {
			o.report.retrying(o.buf.Len())
		}
		tried = true
		err := o.deliverTo(ctx, t, final)
		if err == nil {
			t.failures = 0
			o.report.delivered(t.addr)
			return
		}
		o.buf.Failed()
		t.fail(o.minBackoff, o.maxBackoff)
		causes = append(causes, cause(t.addr, err))
	}
	switch {
	case !tried:
		o.Log.Debugf("all servers are backing off; %d metrics wait in the buffer", o.buf.Len())
	case len(causes) > 0:
		o.report.failed(causes)
	}
}

// order returns the servers in the order to try: the configured one,
// except that an open connection goes first, to finish there.
func (o *GraphiteStatsd) order() []*target {
	if o.link == nil || o.link.t == o.targets[0] {
		return o.targets
	}
	out := make([]*target, 0, len(o.targets))
	out = append(out, o.link.t)
	for _, t := range o.targets {
		if t != o.link.t {
			out = append(out, t)
		}
	}
	return out
}

// deliverTo sends what is pending to t, on one connection, or in
// portions after a server dropped a connection that had taken data: what
// it acknowledged cannot be told read from unread, so it goes again, in
// portions half as large at each such drop, each confirmed by the
// server's clean close, and twice as large after each confirmed one,
// back to one connection once a portion would hold the whole buffer. A
// timeout is not a drop: a server that stopped reading gets no portions,
// which would look delivered once they fit in its receive buffer.
func (o *GraphiteStatsd) deliverTo(ctx context.Context, t *target, final bool) error {
	drops, droppedAt := 0, 0
	for {
		err := o.deliverOn(ctx, t, final || o.portion > 0)
		switch {
		case err == nil && o.portion == 0:
			return nil
		case err == nil:
			// Grow, but not back to a size that was dropped in this
			// delivery.
			if next := 2 * o.portion; droppedAt == 0 || next < droppedAt {
				o.portion = next
			}
			if o.portion >= o.MetricBufferLimit {
				o.portion = 0
			}
			if o.buf.Pending() == 0 {
				return nil
			}
		case o.lastTry.dropped && drops < maxPortionTries && ctx.Err() == nil:
			drops, droppedAt = drops+1, o.lastTry.carried
			o.portion = max(o.lastTry.carried/2, 1)
			o.Log.Debugf("%s dropped the connection after taking data: sending %d metrics at a time", t.addr, o.portion)
		default:
			return err
		}
	}
}
