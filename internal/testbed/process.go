package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// findProgram looks a program up in PATH and then in the system
// directories a non-root PATH often lacks (haproxy lives in /usr/sbin).
// The error says how to install it.
func findProgram(name, install string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH: install it with %q (or run ./scripts/test, which installs every test dependency)", name, install)
}

// freePort returns a loopback TCP port nobody listens on right now. The
// caller binds it soon after; a start that loses the race is retried.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("picking a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	seen := make(map[int]bool, n)
	for len(ports) < n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// freeUDPPort returns a loopback port free for both TCP and UDP.
func freeUDPPort() (int, error) {
	for range 20 {
		p, err := freePort()
		if err != nil {
			return 0, err
		}
		c, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = c.Close()
		return p, nil
	}
	return 0, errors.New("no loopback port free for both TCP and UDP")
}

// readPIDFile polls a daemon's pid file until it holds a pid or ctx ends.
func readPIDFile(ctx context.Context, path string) (int, error) {
	for {
		data, err := os.ReadFile(path)
		if err == nil {
			fields := strings.Fields(string(data))
			if len(fields) > 0 {
				pid, err := strconv.Atoi(fields[0])
				if err != nil || pid <= 0 {
					return 0, fmt.Errorf("pid file %s holds %q, not a pid", path, data)
				}
				return pid, nil
			}
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return 0, fmt.Errorf("waiting for pid file %s: %w", path, err)
		}
	}
}

// processAlive reports whether pid names a running process. A zombie (a
// daemon reparented to an init that does not reap) counts as gone.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !os.IsNotExist(err)
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// stopProcess sends SIGTERM to pid, waits up to grace for it to exit, then
// sends SIGKILL and waits again. It is a no-op for a process already gone.
func stopProcess(pid int, grace time.Duration) error {
	if !processAlive(pid) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping pid %d: %w", pid, err)
	}
	if waitGone(pid, grace) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing pid %d: %w", pid, err)
	}
	if waitGone(pid, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("pid %d still running after SIGKILL", pid)
}

func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// sleepCtx sleeps for d or until ctx ends, whichever comes first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// withDefaultTimeout bounds ctx by d unless it already has a deadline.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// tail returns the last n bytes of b as a trimmed string, for error messages.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// retryStart calls start up to tries times, as long as it fails with an
// error retry accepts and ctx is alive, and returns the first success or
// the last error. A daemon that fails to come up (a port taken meanwhile,
// a slow start) often comes up on the next try.
func retryStart[T any](ctx context.Context, tries int, retry func(error) bool, start func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range tries {
		if v, err = start(); err == nil || !retry(err) || ctx.Err() != nil {
			return v, err
		}
	}
	return v, err
}

// anyError retries whatever the error.
func anyError(error) bool { return true }

// fileTail returns the end of a log file for an error message.
func fileTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(no " + filepath.Base(path) + ")"
	}
	return tail(data, 1500)
}

// NeedsPeer skips t under go test -short, in one line naming the peer it
// needs: a program a machine with only Go lacks. The NewX helpers of the
// real peers call it; a test that starts one by other means calls it
// first.
func NeedsPeer(t testing.TB, peer string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s: run without -short, or ./scripts/test, which installs it", peer)
	}
}

// stopAtEnd is the end of every NewX for tests: it fails t on err, and
// otherwise closes peer when the test ends, failing t if that fails.
func stopAtEnd[P io.Closer](t testing.TB, peer P, err error) P {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := peer.Close(); err != nil {
			t.Error(err)
		}
	})
	return peer
}
