package graphite_statsd

import (
	"context"
	cryptotls "crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

const (
	// chunkSize is how many serialised bytes go to the socket in one write.
	chunkSize = 64 << 10
	// peekWait is how long a liveness check waits for the kernel's news.
	peekWait = time.Millisecond
)

// target is one server and its connection, kept across writes.
type target struct {
	addr     string
	tls      *cryptotls.Config
	conn     net.Conn
	failures int
	retryAt  time.Time
}

func (t *target) close() {
	if t.conn != nil {
		t.conn.Close() //nolint:errcheck // nothing useful to do with it
		t.conn = nil
	}
}

// fail closes the connection and schedules the next dial with exponential
// backoff, so a dead server is not hammered.
func (t *target) fail(minB, maxB time.Duration) time.Duration {
	t.close()
	t.failures++
	d := minB
	for i := 1; i < t.failures && d < maxB; i++ {
		d *= 2
	}
	d = min(d, maxB)
	t.retryAt = time.Now().Add(d)
	return d
}

func (o *GraphiteStatsd) dial(ctx context.Context, t *target) error {
	if t.conn != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(o.Timeout))
	defer cancel()
	var conn net.Conn
	var err error
	d := &net.Dialer{}
	if t.tls != nil {
		cfg := t.tls.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(t.addr)
		}
		td := &cryptotls.Dialer{NetDialer: d, Config: cfg}
		conn, err = td.DialContext(ctx, o.Transport, t.addr)
	} else {
		conn, err = d.DialContext(ctx, o.Transport, t.addr)
	}
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return err // it reads "dial tcp ADDR: ..." already
		}
		return fmt.Errorf("dial %s %s: %w", o.Transport, t.addr, err)
	}
	t.conn = conn
	o.Log.Debugf("connected to %s over %s", t.addr, o.Transport)
	return nil
}

// confirm settles what the last write left on a TCP connection: the server
// took it if the connection is still open, or was closed cleanly (carbon
// closes with unread data only by a reset). A reset or any other error means
// some of it may be lost: it is sent again (Graphite and statsd gauges keep
// the last value for a path and time, so a repeat is harmless).
func (o *GraphiteStatsd) confirm() {
	if o.unconf == 0 || o.holder == nil {
		return
	}
	t := o.holder
	err := peek(t.conn)
	if errors.Is(err, io.EOF) {
		// Lines that reached the server after its close were reset; a
		// read still sees only the close.
		if perr := pendingError(t.conn); perr != nil {
			err = perr
		}
	}
	switch {
	case err == nil:
		o.release(o.unconf)
	case errors.Is(err, io.EOF):
		o.release(o.unconf)
		o.Log.Debugf("%s closed the connection; reconnecting on the next write", t.addr)
		t.close()
	default:
		o.Log.Warnf("connection to %s failed after the last write (%v): sending its %d metrics again", t.addr, err, o.unconf)
		t.close()
	}
	o.unconf, o.holder = 0, nil
}

// peek reads without waiting: nil if the connection is open and quiet.
func peek(conn net.Conn) error {
	if conn == nil {
		return io.ErrClosedPipe
	}
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

// pendingError returns the error the kernel holds for conn's socket. Once
// the server has closed its side, reads return EOF, and a reset of lines
// that arrived after the close shows only here (EPIPE, ECONNRESET).
func pendingError(conn net.Conn) error {
	if tc, ok := conn.(*cryptotls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
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

// flush tries to deliver the whole buffer, in order, to the first server
// that takes it. final is Close's last try: it ignores backoff, and on TCP
// waits for the server to close its side after ours, which proves the
// server read everything.
func (o *GraphiteStatsd) flush(ctx context.Context, final bool) {
	if len(o.buf) == 0 {
		return
	}
	var errs []string
	tried := false
	for _, t := range o.order() {
		if !final && t.conn == nil && time.Now().Before(t.retryAt) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		tried = true
		err := o.deliverTo(ctx, t, final)
		if err == nil {
			t.failures = 0
			o.reportSkipped()
			return
		}
		wait := t.fail(o.minBackoff, o.maxBackoff)
		errs = append(errs, fmt.Sprintf("%v (next try in %s)", err, wait.Round(time.Millisecond)))
	}
	o.reportSkipped()
	if !tried {
		o.Log.Debugf("all servers are backing off; %d metrics wait in the buffer", len(o.buf))
		return
	}
	o.Log.Errorf("delivery failed, %d metrics kept for the next try: %s", len(o.buf), strings.Join(errs, "; "))
}

// order returns the servers in the order to try: the configured one, except
// that a connection holding unconfirmed metrics goes first, to finish there.
func (o *GraphiteStatsd) order() []*target {
	if o.holder == nil || o.holder == o.targets[0] {
		return o.targets
	}
	out := make([]*target, 0, len(o.targets))
	out = append(out, o.holder)
	for _, t := range o.targets {
		if t != o.holder {
			out = append(out, t)
		}
	}
	return out
}

// deliverTo sends the buffer to t. On TCP what it wrote stays in the buffer
// as unconfirmed until the next write (or the end of Close) settles it; on
// UDP what is sent is delivered.
func (o *GraphiteStatsd) deliverTo(ctx context.Context, t *target, final bool) error {
	if o.holder != nil && o.holder != t {
		o.unconf, o.holder = 0, nil // the other connection failed: resend all
	}
	if err := o.dial(ctx, t); err != nil {
		return err
	}
	udp := o.Transport == transportUDP
	for next := o.unconf; next < len(o.buf); {
		n, err := o.sendChunk(ctx, t.conn, next, udp)
		if err != nil {
			if o.holder == t {
				o.unconf, o.holder = 0, nil
			}
			return fmt.Errorf("write to %s: %w", t.addr, err)
		}
		if udp {
			o.release(n)
			continue
		}
		next += n
		o.unconf, o.holder = next, t
	}
	if final && !udp {
		if err := o.closeAndWait(ctx, t); err != nil {
			o.unconf, o.holder = 0, nil
			return err
		}
		o.release(o.unconf)
		o.unconf, o.holder = 0, nil
	}
	return nil
}

// sendChunk serialises metrics from buf[from:] until about chunkSize bytes
// and writes them; it returns how many metrics the chunk held.
func (o *GraphiteStatsd) sendChunk(ctx context.Context, conn net.Conn, from int, udp bool) (int, error) {
	chunk := o.chunk[:0]
	var ends *[]int
	if udp {
		o.ends = o.ends[:0]
		ends = &o.ends
	}
	n := 0
	for from+n < len(o.buf) && len(chunk) < chunkSize {
		chunk = o.ser.appendMetric(chunk, o.buf[from+n], ends)
		n++
	}
	o.chunk = chunk
	deadline := time.Now().Add(time.Duration(o.Timeout))
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetWriteDeadline(deadline); err != nil {
		return 0, err
	}
	if !udp {
		_, err := conn.Write(chunk)
		return n, err
	}
	return n, o.sendPackets(conn, chunk)
}

// sendPackets writes whole units packed into datagrams of at most
// max_packet_size bytes. Every unit fits: larger ones were skipped.
func (o *GraphiteStatsd) sendPackets(conn net.Conn, chunk []byte) error {
	start, end := 0, 0
	for _, e := range o.ends {
		if e-start > o.MaxPacketSize && end > start {
			if _, err := conn.Write(chunk[start:end]); err != nil {
				return err
			}
			start = end
		}
		end = e
	}
	if end > start {
		_, err := conn.Write(chunk[start:end])
		return err
	}
	return nil
}

// closeAndWait half-closes t's connection and waits for the server to
// close its side: a server that read everything closes cleanly.
func (o *GraphiteStatsd) closeAndWait(ctx context.Context, t *target) error {
	defer t.close()
	type closeWriter interface{ CloseWrite() error }
	cw, ok := t.conn.(closeWriter)
	if !ok {
		return nil
	}
	if err := cw.CloseWrite(); err != nil {
		return fmt.Errorf("closing the connection to %s: %w", t.addr, err)
	}
	if tc, ok := t.conn.(*cryptotls.Conn); ok {
		// TLS sends close_notify only; end the TCP stream as well.
		if ncw, ok := tc.NetConn().(closeWriter); ok {
			ncw.CloseWrite() //nolint:errcheck // the read below reports trouble
		}
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Duration(o.Timeout))
	}
	if err := t.conn.SetReadDeadline(deadline); err != nil {
		return err
	}
	var b [256]byte
	for {
		_, err := t.conn.Read(b[:])
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			if perr := pendingError(t.conn); perr != nil {
				return fmt.Errorf("%s closed before reading everything: %w", t.addr, perr)
			}
			return nil
		default:
			return fmt.Errorf("waiting for %s to read everything: %w", t.addr, err)
		}
	}
}

func (o *GraphiteStatsd) reportSkipped() {
	s := o.ser
	if s.skipped > 0 {
		o.Log.Warnf("skipped %d lines longer than %d bytes, e.g. %q", s.skipped, s.maxUnit, s.skippedExample)
		s.skipped, s.skippedExample = 0, ""
	}
	if s.unusable > 0 {
		o.Log.Debugf("skipped %d field values that are not numbers (strings, NaN, Inf)", s.unusable)
		s.unusable = 0
	}
}
