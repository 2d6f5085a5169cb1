package testbed

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// SinkKeep says what a GraphiteSink keeps of the lines it reads.
type SinkKeep int

const (
	// KeepLines keeps every line, for Lines and Conns.
	KeepLines SinkKeep = iota
	// KeepCounts keeps, per timestamp, how many lines arrived, for Counts:
	// for runs of millions of lines.
	KeepCounts
	// KeepTotals keeps only the number of lines and bytes, for Total: the
	// fastest reader, for benchmarks.
	KeepTotals
)

// SinkOptions make a GraphiteSink misbehave as an overloaded or odd carbon
// does. The zero value is a carbon that reads every connection to its end
// as fast as it can and closes its side after the client's.
type SinkOptions struct {
	// Stalled accepts connections and reads no byte of them until Resume:
	// the client's writes fill the kernel's buffers, then block.
	Stalled bool
	// PauseAfter stops reading once this many lines arrived, counted over
	// every connection, until Resume.
	PauseAfter int
	// CloseAfter closes each connection once it has read this many lines
	// of it. No byte past them is taken from the kernel, so the close is a
	// reset when the client sent more.
	CloseAfter int
	// Linger reads each connection to the client's EOF but never closes
	// its own side: the connection stays open until Stop, as with a server
	// that ignores a half-close.
	Linger bool
	// BytesPerSecond reads each connection at about this rate: a slow
	// reader that keeps making progress. 0 reads as fast as it can.
	BytesPerSecond int
	// Faulty limits Stalled, CloseAfter, Linger and BytesPerSecond to the
	// first Faulty connections accepted (counted over restarts); later
	// ones are served well. 0 applies them to every connection.
	Faulty int
	// ReceiveBuffer sets SO_RCVBUF on the listener, so that connections
	// have a small window from their handshake on. 0 keeps the kernel's
	// default.
	ReceiveBuffer int
	// Keep says what is kept of the lines: KeepLines (the default),
	// KeepCounts or KeepTotals.
	Keep SinkKeep
	// Marker, with KeepCounts, also counts per timestamp the lines whose
	// path ends with it (SinkCounts.Marks), e.g. a series each gather
	// sends once.
	Marker string
	// TLS serves TLS with this configuration. CloseAfter then counts
	// decrypted lines, and TLS reads whole records from the kernel.
	TLS *tls.Config
}

// SinkCounts is what a KeepCounts sink counted.
type SinkCounts struct {
	// Lines is the number of lines per timestamp (the line's last field).
	Lines map[int64]int
	// Marks is the number of lines of the Marker series per timestamp.
	Marks map[int64]int
	// Malformed is the number of lines without a timestamp, and
	// MalformedExample the last of them.
	Malformed        int
	MalformedExample string
}

// GraphiteSink is a Graphite plaintext receiver on loopback TCP that
// records what it reads and can misbehave on demand (SinkOptions). A line
// counts once its line break is read; a connection's unterminated last
// line is left out (PartialLines counts them).
type GraphiteSink struct {
	// Addr is the address it listens on, kept over Stop and Restart.
	Addr string

	opts   SinkOptions
	marker []byte
	wg     sync.WaitGroup
	nLines atomic.Int64
	nBytes atomic.Int64

	mu       sync.Mutex
	l        net.Listener
	tcpL     *net.TCPListener // l, or the listener under its TLS
	stop     chan struct{}    // closed by Stop, a new one on Restart
	stopped  bool
	resume   chan struct{} // closed by Resume
	resumed  bool
	open     map[net.Conn]bool
	reading  int // connections not yet read to their end
	lines    []string
	conns    [][]string
	counts   SinkCounts
	accepted int
	closed   int
	eofs     int
	partial  int
}

// StartGraphiteSink listens on addr ("127.0.0.1:0" for any free port),
// retrying until ctx ends while the address is still in use (a port just
// freed may take a moment), and serves every connection as opts say.
func StartGraphiteSink(ctx context.Context, addr string, opts SinkOptions) (*GraphiteSink, error) {
	s := &GraphiteSink{
		opts:   opts,
		marker: []byte(opts.Marker),
		resume: make(chan struct{}),
		open:   map[net.Conn]bool{},
		counts: SinkCounts{Lines: map[int64]int{}, Marks: map[int64]int{}},
	}
	if err := s.listen(ctx, addr); err != nil {
		return nil, err
	}
	return s, nil
}

// NewGraphiteSink is StartGraphiteSink for tests: it waits up to 10 s for
// addr, fails t on error and stops the sink when the test ends.
func NewGraphiteSink(t testing.TB, addr string, opts SinkOptions) *GraphiteSink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := StartGraphiteSink(ctx, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func (s *GraphiteSink) listen(ctx context.Context, addr string) error {
	lc := net.ListenConfig{}
	if size := s.opts.ReceiveBuffer; size > 0 {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	var l net.Listener
	for {
		var err error
		if l, err = lc.Listen(ctx, "tcp", addr); err == nil {
			break
		}
		if serr := sleepCtx(ctx, 50*time.Millisecond); serr != nil {
			return fmt.Errorf("graphite sink: listening on %s: %w", addr, err)
		}
	}
	tcpL := l.(*net.TCPListener)
	if s.opts.TLS != nil {
		l = tls.NewListener(l, s.opts.TLS)
	}
	stop := make(chan struct{})
	s.mu.Lock()
	s.Addr, s.l, s.tcpL, s.stop, s.stopped = l.Addr().String(), l, tcpL, stop, false
	s.wg.Add(1)
	s.mu.Unlock()
	go s.accept(l, stop)
	return nil
}

func (s *GraphiteSink) accept(l net.Listener, stop chan struct{}) {
	defer s.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.stop != stop || s.stopped {
			s.mu.Unlock()
			resetConn(c)
			return
		}
		idx := s.accepted
		s.accepted++
		s.conns = append(s.conns, nil)
		s.open[c] = true
		s.reading++
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c, idx, stop)
	}
}

// connState is what serve knows of one connection.
type connState struct {
	idx     int
	partial []byte // the line read so far
	tail    int    // KeepTotals: bytes read since the last line break
	lines   map[int64]int
	marks   map[int64]int
	bad     int
	badEx   string
}

func (s *GraphiteSink) serve(c net.Conn, idx int, stop chan struct{}) {
	defer s.wg.Done()
	st := &connState{idx: idx}
	if s.opts.Keep == KeepCounts {
		st.lines, st.marks = map[int64]int{}, map[int64]int{}
	}
	faulty := s.opts.Faulty == 0 || idx < s.opts.Faulty
	eof := s.read(c, st, faulty, stop)
	s.mu.Lock()
	s.reading--
	if eof {
		s.eofs++
	}
	s.mu.Unlock()
	if eof && faulty && s.opts.Linger {
		<-stop // Stop resets the connection
	}
	c.Close()
	s.mu.Lock()
	if len(st.partial) > 0 || st.tail > 0 {
		s.partial++
	}
	delete(s.open, c)
	s.closed++
	s.mu.Unlock()
}

// read reads c to its end, or to CloseAfter lines, as the options say. It
// reports whether the client's EOF was read.
func (s *GraphiteSink) read(c net.Conn, st *connState, faulty bool, stop chan struct{}) (eof bool) {
	if faulty && s.opts.Stalled && !s.wait(stop) {
		return false
	}
	size := 64 << 10
	if s.opts.Keep == KeepTotals {
		size = 256 << 10
	}
	buf := make([]byte, size)
	left, rate := 0, 0
	if faulty {
		left, rate = s.opts.CloseAfter, s.opts.BytesPerSecond
	}
	start, got := time.Now(), 0
	for {
		want := len(buf)
		if left > 0 {
			// A line is at least its line break: reading no more bytes
			// than lines left never takes a byte past the last of them.
			want = min(want, left)
		}
		if rate > 0 {
			want = min(want, max(1, rate/20))
		}
		n, err := c.Read(buf[:want])
		if n > 0 {
			s.nBytes.Add(int64(n))
			lines, ok := s.consume(st, buf[:n], stop)
			if !ok {
				return false
			}
			if left > 0 {
				if left -= lines; left <= 0 {
					return false
				}
			}
			if got += n; rate > 0 {
				due := start.Add(time.Duration(float64(got) / float64(rate) * float64(time.Second)))
				if !sleepUntil(due, stop) {
					return false
				}
			}
		}
		if err != nil {
			return errors.Is(err, io.EOF)
		}
	}
}

// consume takes the lines of p, pausing after PauseAfter lines. It returns
// the number of lines ended in p, and false if the sink stopped meanwhile.
func (s *GraphiteSink) consume(st *connState, p []byte, stop chan struct{}) (int, bool) {
	if s.opts.Keep == KeepTotals && s.opts.PauseAfter == 0 {
		n := bytes.Count(p, []byte{'\n'})
		s.nLines.Add(int64(n))
		if n > 0 {
			st.tail = len(p) - bytes.LastIndexByte(p, '\n') - 1
		} else {
			st.tail += len(p)
		}
		return n, true
	}
	n := 0
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			st.partial = append(st.partial, p...)
			break
		}
		line := p[:i]
		if len(st.partial) > 0 {
			st.partial = append(st.partial, line...)
			line = st.partial
		}
		s.add(st, line)
		st.partial, p, n = st.partial[:0], p[i+1:], n+1
		if s.opts.PauseAfter > 0 && s.nLines.Add(1) >= int64(s.opts.PauseAfter) {
			s.flush(st)
			if !s.wait(stop) {
				return n, false
			}
		}
	}
	if s.opts.PauseAfter == 0 {
		s.nLines.Add(int64(n))
	}
	s.flush(st)
	return n, true
}

// add keeps one line.
func (s *GraphiteSink) add(st *connState, line []byte) {
	switch s.opts.Keep {
	case KeepLines:
		l := string(line)
		s.mu.Lock()
		s.lines = append(s.lines, l)
		s.conns[st.idx] = append(s.conns[st.idx], l)
		s.mu.Unlock()
	case KeepCounts:
		sp := bytes.LastIndexByte(line, ' ')
		ts, ok := parseTimestamp(line[sp+1:])
		if sp < 0 || !ok {
			st.bad++
			st.badEx = string(line)
			break
		}
		st.lines[ts]++
		if path, _, _ := bytes.Cut(line, []byte{' '}); len(s.marker) > 0 && bytes.HasSuffix(path, s.marker) {
			st.marks[ts]++
		}
	}
}

// parseTimestamp parses a line's last field as strconv.ParseInt does in
// base 10, without allocating for the usual digits.
func parseTimestamp(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		v, err := strconv.ParseInt(string(b), 10, 64)
		return v, err == nil
	}
	neg, digits := false, b
	if b[0] == '-' || b[0] == '+' {
		neg, digits = b[0] == '-', b[1:]
	}
	if len(digits) == 0 {
		return 0, false
	}
	var v int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// flush adds a KeepCounts connection's counts to the sink's.
func (s *GraphiteSink) flush(st *connState) {
	if s.opts.Keep != KeepCounts {
		return
	}
	s.mu.Lock()
	for ts, n := range st.lines {
		s.counts.Lines[ts] += n
	}
	for ts, n := range st.marks {
		s.counts.Marks[ts] += n
	}
	if st.bad > 0 {
		s.counts.Malformed += st.bad
		s.counts.MalformedExample = st.badEx
	}
	s.mu.Unlock()
	clear(st.lines)
	clear(st.marks)
	st.bad = 0
}

// wait blocks until Resume or Stop; it reports whether Resume came first.
func (s *GraphiteSink) wait(stop chan struct{}) bool {
	s.mu.Lock()
	resume := s.resume
	s.mu.Unlock()
	select {
	case <-resume:
		return true
	case <-stop:
		return false
	}
}

// sleepUntil sleeps until t or a stop; it reports whether t came first.
func sleepUntil(t time.Time, stop chan struct{}) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-stop:
		return false
	}
}

// Resume lets a Stalled or paused sink read again, for good.
func (s *GraphiteSink) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.resumed {
		s.resumed = true
		close(s.resume)
	}
}

// Stop closes the listener and resets every open connection (SO_LINGER
// 0), as a crashed server does: the client learns that what it sent and
// the sink did not read is lost. It waits for the sink's goroutines and
// is safe to call more than once. What was read is kept.
func (s *GraphiteSink) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.l.Close()
	for c := range s.open {
		resetConn(c)
	}
	close(s.stop)
	s.mu.Unlock()
	s.wg.Wait()
}

// Restart stops the sink if it runs, as Stop does, and listens again on
// Addr with the same options, retrying until ctx ends while the address
// is in use: a flapping server. What was read before is kept, and
// Accepted counts on; a Resume holds over restarts.
func (s *GraphiteSink) Restart(ctx context.Context) error {
	s.Stop()
	return s.listen(ctx, s.Addr)
}

// resetConn closes c with SO_LINGER 0: a reset, not a FIN.
func resetConn(c net.Conn) {
	raw := c
	if tc, ok := c.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		tc.SetLinger(0) //nolint:errcheck // a plain close is the fallback
	}
	raw.Close()
}

// Drain resumes the sink and waits until every connection has been read
// to its end (the client's EOF, CloseAfter or an error), or ctx ends. A
// connection still waiting in the listener's queue counts as unread.
func (s *GraphiteSink) Drain(ctx context.Context) error {
	s.Resume()
	// Twice in a row: a connection just taken from the queue is not
	// counted as being read yet.
	for zeros := 0; ; {
		s.mu.Lock()
		n := s.reading
		if !s.stopped {
			n += acceptQueue(s.tcpL)
		}
		s.mu.Unlock()
		if zeros++; n > 0 {
			zeros = 0
		} else if zeros == 2 {
			return nil
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return fmt.Errorf("graphite sink %s: %d connections not read to their end: %w", s.Addr, n, err)
		}
	}
}

// acceptQueue is the number of connections established and waiting in
// l's queue for an accept: Linux's tcp_info of a listening socket holds it
// in tcpi_unacked. It is 0 when that cannot be read.
func acceptQueue(l *net.TCPListener) int {
	raw, err := l.SyscallConn()
	if err != nil {
		return 0
	}
	var info [104]byte // struct tcp_info, up to tcpi_total_retrans and more
	size := uint32(len(info))
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	}); err != nil || errno != 0 || size < 28 {
		return 0
	}
	return int(binary.NativeEndian.Uint32(info[24:28]))
}

// Lines returns the lines read so far, in arrival order (KeepLines).
func (s *GraphiteSink) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines)
}

// Conns returns the lines read so far of each connection, in the order
// the connections were accepted (KeepLines).
func (s *GraphiteSink) Conns() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]string, len(s.conns))
	for i, c := range s.conns {
		out[i] = slices.Clone(c)
	}
	return out
}

// Counts returns the counts so far of a KeepCounts sink.
func (s *GraphiteSink) Counts() SinkCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts
	c.Lines, c.Marks = maps.Clone(c.Lines), maps.Clone(c.Marks)
	return c
}

// Total returns the number of lines and bytes read so far, in any mode.
func (s *GraphiteSink) Total() (lines, bytes int64) {
	return s.nLines.Load(), s.nBytes.Load()
}

// Accepted is the number of connections accepted so far.
func (s *GraphiteSink) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Closed is the number of connections the sink has closed: after the
// client's EOF (with Linger, only at Stop), after CloseAfter lines, on an
// error or at Stop.
func (s *GraphiteSink) Closed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// EOFs is the number of connections whose end the client announced (a
// close or CloseWrite) and the sink read.
func (s *GraphiteSink) EOFs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eofs
}

// PartialLines is the number of connections that ended in the middle of
// a line; those partial lines are not recorded.
func (s *GraphiteSink) PartialLines() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.partial
}
