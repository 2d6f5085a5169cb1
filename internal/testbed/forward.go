package testbed

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Forwarder listens on an address and relays what each connection sends
// to another address, one way, as Graphite's plaintext protocol goes: a
// server that comes back on the address a client was configured with,
// while the real one (a Carbon) listens elsewhere.
type Forwarder struct {
	// Addr is the address it listens on.
	Addr string

	l     net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// StartForwarder listens on addr and relays each connection to to, dialled
// when the connection arrives (a failed dial closes it), until Close.
func StartForwarder(addr, to string) (*Forwarder, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	f := &Forwarder{Addr: l.Addr().String(), l: l, conns: map[net.Conn]bool{}}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns[c] = true
			f.wg.Add(1)
			f.mu.Unlock()
			go f.relay(c, to)
		}
	}()
	return f, nil
}

// NewForwarder is StartForwarder for tests: it fails t on error and closes
// the forwarder when the test ends.
func NewForwarder(t testing.TB, addr, to string) *Forwarder {
	t.Helper()
	f, err := StartForwarder(addr, to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func (f *Forwarder) relay(c net.Conn, to string) {
	defer f.wg.Done()
	defer func() {
		c.Close()
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
	}()
	up, err := net.DialTimeout("tcp", to, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	io.Copy(up, c) //nolint:errcheck // the relay ends with either side
}

// Close stops listening, closes the connections being relayed and waits
// for them. It is safe to call more than once.
func (f *Forwarder) Close() error {
	err := f.l.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	return err
}
