package testbed

import (
	"fmt"
	"net"
	"syscall"
	"testing"
)

// ClosedAddr returns a loopback TCP address that refuses connections for
// the rest of t. A socket bound there that never listens holds the port,
// so that no other test or process given a port by the kernel takes it
// meanwhile, as one could between closing a listener and using its port.
// A listener of t's own may still bind it (Go's listeners and this socket
// both set SO_REUSEADDR, and Linux lets them share a port none listens
// on), to bring a server up there later.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	addr, closeFn, err := reserveClosed()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeFn)
	return addr
}

func reserveClosed() (string, func(), error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("a socket to hold a closed port: %w", err)
	}
	closeFn := func() { _ = syscall.Close(fd) }
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		closeFn()
		return "", nil, fmt.Errorf("SO_REUSEADDR on the socket holding a closed port: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		closeFn()
		return "", nil, fmt.Errorf("binding a closed loopback port: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		closeFn()
		return "", nil, fmt.Errorf("the closed port's address: %w", err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		closeFn()
		return "", nil, fmt.Errorf("the closed port's address is %T", sa)
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(in4.Port)), closeFn, nil
}
