package testbed

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// TestClosedAddr: the address refuses connections, the kernel gives its
// port to nobody else, and a listener of the test's own can take it.
func TestClosedAddr(t *testing.T) {
	addr := ClosedAddr(t)
	if _, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := l.Addr().String()
		l.Close()
		if got == addr {
			t.Fatalf("the kernel gave the held port %s to another listener", addr)
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("a listener of the test's own on %s: %v", addr, err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s once a listener is up: %v", addr, err)
	}
	c.Close()
}
