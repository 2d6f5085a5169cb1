package graphite_statsd

import (
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
			if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
				// Whether the deadline or the context ended it is a race:
				// say the timeout either way.
				return nil, fmt.Errorf("TLS handshake with %s: no answer within timeout %s (%w)", t.addr, o.Timeout, err)
			}
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
