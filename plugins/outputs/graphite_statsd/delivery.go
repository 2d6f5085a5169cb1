package graphite_statsd

import (
	"bytes"
	"context"
	cryptotls "crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// newline ends a Graphite or statsd line: the backlog is paced by them.
var newline = []byte{'\n'}

const (
	// pieceSize is the most bytes one socket write carries: each write is
	// given timeout to make progress, so a slow server that keeps reading
	// is never given up on.
	pieceSize = 64 << 10
	// takeBatch is how many metrics are serialised at a time.
	takeBatch = 256
	// retainBytes bounds the lines a connection keeps after the peer's
	// TCP stack acknowledged them, to send again should the connection
	// turn out to have dropped them (a reset instead of a clean close).
	// It covers Linux's largest default receive buffer (6 MB).
	retainBytes = 8 << 20
	// confirmWait is the longest Close waits for a server to close its
	// side after ours: a clean close proves it read everything, but a
	// server may keep its side open, and everything was acknowledged.
	confirmWait = 250 * time.Millisecond
	// peekWait is how long a liveness check waits for the kernel's news.
	peekWait = time.Millisecond
	// maxPortionTries bounds how often one delivery halves its portion
	// for a server that takes data and drops the connection.
	maxPortionTries = 8
)

// deliverOn sends what is pending to t on one connection, at most
// portion metrics when portion is set. On TCP what it wrote stays in the
// buffer, in flight then acknowledged, until the peer acknowledges and
// the next write (or, with finish, the server's close) finds the
// connection sound; on UDP what is sent is delivered. On error everything
// the connection carried goes back to pending and the connection is
// closed.
func (o *GraphiteStatsd) deliverOn(ctx context.Context, t *target, final bool) error {
	if o.link == nil {
		l, err := o.dial(ctx, t)
		if err != nil {
			o.lastTry = attempt{}
			return err
		}
		l.limit = o.portion
		o.link = l
	}
	l := o.link
	// Cancelling ctx interrupts a write in flight at once.
	stop := context.AfterFunc(ctx, func() { l.conn.SetDeadline(time.Unix(1, 0)) }) // best effort
	defer stop()
	send := func(l *link) error { return o.sendLines(ctx, l) }
	if o.Transport == transportUDP {
		send = func(l *link) error { return o.sendPackets(ctx, l) }
	}
	defer o.pace.reset()
	err := send(l)
	// Everything went: send what earlier runs spooled and this one could
	// not hold.
	for err == nil && ctx.Err() == nil && o.buf.Pending() == 0 && o.refill() {
		err = send(l)
	}
	switch {
	case o.Transport == transportUDP:
		if final {
			o.closeLink()
		}
	default:
		if err == nil && final {
			err = o.finish(ctx, l)
			if err == nil {
				o.confirmKept(l, len(l.kept))
				o.closeLink()
			}
		}
	}
	if err != nil {
		o.lastTry = attempt{carried: l.carried, dropped: l.acked > 0 && isReset(err)}
		o.buf.Retry()
		o.closeLink()
		return err
	}
	return nil
}

// refill loads spool files that did not fit in the buffer so far; it
// reports whether it loaded any metric.
func (o *GraphiteStatsd) refill() bool {
	n, err := o.buf.LoadSpool()
	if err != nil {
		o.Log.Errorf("spool_dir: %v", err)
	}
	return n > 0
}

// sendLines writes every pending metric to a stream connection, a piece at
// a time, keeping each metric's end offset to learn when it is
// acknowledged.
func (o *GraphiteStatsd) sendLines(ctx context.Context, l *link) error {
	for {
		n := takeBatch
		if l.limit > 0 {
			n = min(n, l.limit-l.carried)
		}
		ms := o.buf.Take(n)
		if len(ms) == 0 {
			return nil
		}
		l.carried += len(ms)
		chunk := o.chunk[:0]
		for _, m := range ms {
			chunk = o.ser.appendMetric(chunk, m, nil)
			l.flight = append(l.flight, l.sent+int64(len(chunk)))
		}
		o.chunk = chunk
		if err := o.paceBacklog(ctx, l, chunk); err != nil {
			return err
		}
		for len(chunk) > 0 {
			n := min(len(chunk), pieceSize)
			if err := o.writePiece(l, chunk[:n]); err != nil {
				return fmt.Errorf("write to %s: %w", l.t.addr, err)
			}
			chunk = chunk[n:]
		}
		if _, err := o.poll(l); err != nil {
			return err
		}
	}
}

// paceBacklog waits, while the buffer holds metrics loaded from the
// spool, until chunk's lines may go within spool_replay_rate; otherwise
// the pace starts anew.
func (o *GraphiteStatsd) paceBacklog(ctx context.Context, l *link, chunk []byte) error {
	if o.buf.FromSpool() == 0 {
		o.pace.reset()
		return nil
	}
	if err := o.pace.wait(ctx, bytes.Count(chunk, newline)); err != nil {
		return fmt.Errorf("sending the spool's backlog to %s at spool_replay_rate = %d lines/s: %w", l.t.addr, o.SpoolReplayRate, err)
	}
	return nil
}

// writePiece writes p, giving the server timeout to take it.
func (o *GraphiteStatsd) writePiece(l *link, p []byte) error {
	if err := l.conn.SetWriteDeadline(time.Now().Add(time.Duration(o.Timeout))); err != nil {
		return err
	}
	n, err := l.conn.Write(p)
	if n > 0 {
		o.buf.Progress() // the kernel took it: the peer is reading
	}
	l.sent += int64(n)
	l.pieces = append(l.pieces, piece{plain: l.sent, wire: l.wire.n})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%s took nothing for %s (%s)", l.t.addr, o.Timeout, err)
	}
	return err
}

// finish waits until the peer acknowledged everything written, making
// progress at least every timeout, then ends the stream and gives the
// server a moment to close its side: a clean close proves it read
// everything, a reset that it dropped some, silence that it keeps
// connections open, and everything was acknowledged.
func (o *GraphiteStatsd) finish(ctx context.Context, l *link) error {
	if err := o.waitAcknowledged(ctx, l); err != nil {
		return err
	}
	if tc, ok := l.conn.(*cryptotls.Conn); ok {
		tc.CloseWrite() //nolint:errcheck // sends close_notify; the read below reports trouble
	}
	if err := l.tcp.CloseWrite(); err != nil {
		return fmt.Errorf("closing the connection to %s: %w", l.t.addr, err)
	}
	wait := min(confirmWait, time.Duration(o.Timeout))
	if err := l.conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	var b [256]byte
	for {
		_, err := l.conn.Read(b[:])
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			if perr := pendingError(l.tcp); perr != nil {
				return fmt.Errorf("%s closed before reading everything: %w", l.t.addr, perr)
			}
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			o.Log.Debugf("%s keeps its side open after ours; it acknowledged all %d bytes", l.t.addr, l.sent)
			return nil
		default:
			return fmt.Errorf("%s dropped the connection after acknowledging it: %w", l.t.addr, err)
		}
	}
}

// waitAcknowledged polls until the peer acknowledged every byte written,
// giving up when it acknowledges nothing for timeout or ctx ends.
func (o *GraphiteStatsd) waitAcknowledged(ctx context.Context, l *link) error {
	last, since := int64(-1), time.Now()
	pause := 50 * time.Microsecond
	for {
		q, err := o.poll(l)
		if err == nil {
			err = pendingError(l.tcp)
		}
		if err != nil {
			return fmt.Errorf("waiting for %s to acknowledge: %w", l.t.addr, err)
		}
		if q == 0 {
			return nil
		}
		if q != last {
			last, since = q, time.Now()
		} else if time.Since(since) >= time.Duration(o.Timeout) {
			return fmt.Errorf("%s acknowledged nothing for %s (%d bytes unacknowledged)", l.t.addr, o.Timeout, q)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to acknowledge: %w", l.t.addr, ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// sendPackets sends every pending metric over UDP, whole lines packed into
// datagrams of at most max_packet_size bytes. Every line fits: larger ones
// were skipped. What is sent is delivered.
func (o *GraphiteStatsd) sendPackets(ctx context.Context, l *link) error {
	for {
		ms := o.buf.Take(takeBatch)
		if len(ms) == 0 {
			return nil
		}
		chunk := o.chunk[:0]
		o.ends = o.ends[:0]
		for _, m := range ms {
			chunk = o.ser.appendMetric(chunk, m, &o.ends)
		}
		o.chunk = chunk
		if err := o.paceBacklog(ctx, l, chunk); err != nil {
			return err
		}
		if err := l.conn.SetWriteDeadline(time.Now().Add(time.Duration(o.Timeout))); err != nil {
			return err
		}
		start, end := 0, 0
		for _, e := range o.ends {
			if e-start > o.MaxPacketSize && end > start {
				if _, err := l.conn.Write(chunk[start:end]); err != nil {
					return fmt.Errorf("write to %s: %w", l.t.addr, err)
				}
				start = end
			}
			end = e
		}
		if end > start {
			if _, err := l.conn.Write(chunk[start:end]); err != nil {
				return fmt.Errorf("write to %s: %w", l.t.addr, err)
			}
		}
		o.buf.Delivered(len(ms))
		o.buf.Progress()
	}
}

func (o *GraphiteStatsd) reportSkipped() {
	c := o.ser.takeSkipped()
	if c.long > 0 {
		o.Log.Warnf("skipped %d lines longer than %d bytes, e.g. %q", c.long, o.ser.maxUnit, c.example)
	}
	if c.unusable > 0 {
		o.Log.Debugf("skipped %d field values that are not numbers (strings, NaN, Inf)", c.unusable)
	}
}
