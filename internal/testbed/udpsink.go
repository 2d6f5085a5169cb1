package testbed

import (
	"net"
	"slices"
	"sync"
	"testing"
)

// UDPSink records every datagram sent to a loopback UDP port: a statsd or
// a Graphite UDP receiver that never drops what the kernel delivers.
type UDPSink struct {
	// Addr is the address it listens on.
	Addr string

	c    *net.UDPConn
	done chan struct{}
	mu   sync.Mutex
	got  [][]byte
}

// StartUDPSink listens on a free loopback UDP port with a 4 MB receive
// buffer (the kernel may cap it) until Close.
func StartUDPSink() (*UDPSink, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	c.SetReadBuffer(4 << 20) //nolint:errcheck // a smaller buffer only risks drops, which tests report
	s := &UDPSink{Addr: c.LocalAddr().String(), c: c, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 1<<16)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.got = append(s.got, slices.Clone(buf[:n]))
			s.mu.Unlock()
		}
	}()
	return s, nil
}

// NewUDPSink is StartUDPSink for tests: it fails t on error and closes the
// sink when the test ends.
func NewUDPSink(t testing.TB) *UDPSink {
	t.Helper()
	s, err := StartUDPSink()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Datagrams returns the datagrams received so far, in order.
func (s *UDPSink) Datagrams() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// Close stops listening and waits for the reader. It is safe to call more
// than once.
func (s *UDPSink) Close() error {
	err := s.c.Close()
	<-s.done
	return err
}
