package graphite_statsd

import (
	"bytes"
	"context"
	cryptotls "crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
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

// link is the connection to one server and where what it carries stands.
// Offsets count the serialised (plaintext) bytes written on it.
type link struct {
	t    *target
	conn net.Conn     // written to: TLS, TCP or UDP
	tcp  *net.TCPConn // the TCP socket under conn; nil for UDP
	wire *countConn   // counts the bytes handed to the kernel

	sent   int64   // bytes written
	acked  int64   // bytes the peer acknowledged
	pieces []piece // writes not yet acknowledged
	flight []int64 // end offset of each metric in flight, oldest first
	kept   []int64 // end offset of each acknowledged, unconfirmed metric

	carried int // metrics taken to send on it
	limit   int // the most it may carry; 0 is no limit
}

// attempt is how a failed delivery went, for the portions.
type attempt struct {
	carried int  // metrics it took to send
	dropped bool // the server acknowledged some, then reset the connection
}

// isReset tells whether err is the peer resetting the connection (not a
// timeout: a server that stopped reading is not one that drops).
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// piece is where one write ended, in serialised and in wire bytes (they
// differ under TLS).
type piece struct{ plain, wire int64 }

// countConn counts the bytes written to the socket.
type countConn struct {
	net.Conn
	n int64
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n += int64(n)
	return n, err
}

func (o *GraphiteStatsd) dial(ctx context.Context, t *target) (*link, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(o.Timeout))
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, o.Transport, t.addr)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return nil, err // it reads "dial tcp ADDR: ..." already
		}
		return nil, fmt.Errorf("dial %s %s: %w", o.Transport, t.addr, err)
	}
	w := &countConn{Conn: c}
	l := &link{t: t, conn: w, wire: w}
	l.tcp, _ = c.(*net.TCPConn)
	if t.tls != nil {
		cfg := t.tls.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(t.addr)
		}
		tc := cryptotls.Client(w, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close() // the handshake error says it
			return nil, fmt.Errorf("TLS handshake with %s: %w", t.addr, err)
		}
		l.conn = tc
	}
	o.Log.Debugf("connected to %s over %s", t.addr, o.Transport)
	return l, nil
}

// closeLink closes the current connection's socket. Under TLS it sends
// no close_notify: a finished link sent it already, and on a failed one
// crypto/tls would wait up to 5 s, whatever timeout says, for a server
// that stopped reading to take it.
func (o *GraphiteStatsd) closeLink() {
	if o.link != nil {
		o.link.wire.Conn.Close() // nothing useful to do with it
		o.link = nil
	}
}

// ackProbe tells how many bytes written to a TCP connection its peer has
// not acknowledged yet. The kernel answers (kernelProbe); a test may fake
// it.
type ackProbe interface {
	Unacknowledged(conn *net.TCPConn) (int64, error)
}

// kernelProbe asks the socket's send queue (SIOCOUTQ on Linux).
type kernelProbe struct{}

func (kernelProbe) Unacknowledged(conn *net.TCPConn) (int64, error) { return unacknowledged(conn) }

// poll learns how much of what was written the peer's TCP stack has
// acknowledged, moves those metrics to acknowledged in the buffer, and
// confirms the oldest beyond retainBytes. It returns the bytes still
// unacknowledged.
func (o *GraphiteStatsd) poll(l *link) (int64, error) {
	q, err := o.probe.Unacknowledged(l.tcp)
	if err != nil {
		return 0, err
	}
	acked, confirm, progress := l.acknowledge(q)
	if progress {
		o.buf.Progress()
	}
	if acked > 0 {
		o.buf.Acked(acked)
	}
	o.confirmKept(l, confirm)
	return q, nil
}

// acknowledge records that the peer has every wire byte written but the
// last unacked: the writes it covers are acknowledged, and so are the
// metrics in flight that end within them, which move to kept. It returns
// how many metrics became acknowledged, how many of the kept ones lie more
// than retainBytes behind (to confirm), and whether any write was newly
// acknowledged.
func (l *link) acknowledge(unacked int64) (acked, confirm int, progress bool) {
	wireAcked := l.wire.n - unacked
	i := 0
	for i < len(l.pieces) && l.pieces[i].wire <= wireAcked {
		l.acked = l.pieces[i].plain
		i++
	}
	l.pieces = dropFront(l.pieces, i)
	k := 0
	for k < len(l.flight) && l.flight[k] <= l.acked {
		k++
	}
	if k > 0 {
		l.kept = append(l.kept, l.flight[:k]...)
		l.flight = dropFront(l.flight, k)
	}
	c := 0
	for c < len(l.kept) && l.acked-l.kept[c] > retainBytes {
		c++
	}
	return k, c, i > 0
}

// dropFront removes the first k elements of s in place, so that appending
// reuses its room instead of growing a new array now and then.
func dropFront[T any](s []T, k int) []T {
	if k == 0 {
		return s
	}
	return s[:copy(s, s[k:])]
}

// confirmKept releases the n oldest acknowledged metrics of l: delivered.
func (o *GraphiteStatsd) confirmKept(l *link, n int) {
	if n > 0 {
		o.buf.Confirm(n)
		l.kept = dropFront(l.kept, n)
	}
}

// check settles what the last write left on the open connection: if the
// server is still there, quiet and caught up, or closed cleanly (carbon
// closes with unread data only by a reset), it took what it acknowledged.
// A reset or any other error means some of it may be lost: it is sent
// again (Graphite and statsd gauges keep the last value for a path and
// time, so a repeat is harmless).
func (o *GraphiteStatsd) check(l *link) {
	err := peekLink(l)
	if errors.Is(err, io.EOF) {
		// Lines that reached the server after its close were reset; a
		// read still sees only the close.
		if perr := pendingError(l.tcp); perr != nil {
			err = perr
		}
	}
	if err == nil || errors.Is(err, io.EOF) {
		// A server still behind (bytes unacknowledged) may be one that
		// stopped reading: what it acknowledged stays unconfirmed.
		if q, perr := o.poll(l); perr == nil && q == 0 {
			o.confirmKept(l, len(l.kept))
		}
	}
	switch {
	case err == nil:
		return
	case errors.Is(err, io.EOF):
		o.Log.Debugf("%s closed the connection; reconnecting on the next write", l.t.addr)
	default:
		o.Log.Warnf("connection to %s failed after the last write (%v): sending its %d metrics again", l.t.addr, err, len(l.kept)+len(l.flight))
		if l.acked > 0 && isReset(err) && o.Transport == transportTCP {
			o.portion = max(l.carried/2, 1)
		}
	}
	o.buf.Retry() // what is left in flight was never acknowledged
	o.closeLink()
}

// peekLink tells, without waiting, whether l is open and quiet (nil),
// closed by the server (io.EOF) or failed. It asks the socket first
// (MSG_PEEK, no wait); only a server that sent something is read through
// the connection, to take it (TLS session tickets, an alert).
func peekLink(l *link) error {
	if l.tcp == nil {
		return peek(l.conn)
	}
	raw, err := l.tcp.SyscallConn()
	if err != nil {
		return err
	}
	var n int
	var rerr error
	var b [1]byte
	if err := raw.Control(func(fd uintptr) {
		n, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}); err != nil {
		return err
	}
	switch {
	case errors.Is(rerr, syscall.EAGAIN):
		return nil
	case rerr != nil:
		return rerr
	case n == 0:
		return io.EOF
	}
	return peek(l.conn)
}

// peek reads without waiting long: nil if the connection is open and
// quiet.
func peek(conn net.Conn) error {
	var b [256]byte
	// A deadline already past fails before reading: give the read a
	// moment to see what the kernel holds (EOF, a reset).
	if err := conn.SetReadDeadline(time.Now().Add(peekWait)); err != nil {
		return err
	}
	for {
		_, err := conn.Read(b[:])
		if err == nil {
			continue // a server that talks: ignore what it says
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		return err
	}
}

// pendingError returns the error the kernel holds for the socket, and
// clears it. Once the server has closed its side, reads return EOF, and a
// reset of lines that arrived after the close shows only here (EPIPE,
// ECONNRESET).
func pendingError(conn *net.TCPConn) error {
	if conn == nil {
		return nil
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var soErr int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		soErr, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR)
	}); err != nil {
		return err
	}
	if gerr != nil {
		return gerr
	}
	if soErr != 0 {
		return syscall.Errno(soErr)
	}
	return nil
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
