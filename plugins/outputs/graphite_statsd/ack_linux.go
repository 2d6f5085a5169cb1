package graphite_statsd

import (
	"net"
	"syscall"
	"unsafe"
)

// unacknowledged returns how many bytes written to conn its peer has not
// acknowledged yet: the socket's send queue, sent or not (SIOCOUTQ, the
// same number as TIOCOUTQ). 0 for a connection that is not TCP.
func unacknowledged(conn *net.TCPConn) (int64, error) {
	if conn == nil {
		return 0, nil
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int32
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return int64(n), nil
}
