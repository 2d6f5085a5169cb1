package testbed

import (
	"context"
	"errors"
	"fmt"
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

// CRelayQueueSize is carbon-c-relay's -q: the metrics it queues for one
// destination (its default, 25,000).
const CRelayQueueSize = 25000

// CRelay is a running carbon-c-relay (Debian's carbon-c-relay) in front of
// carbon-caches: a config of its own in a temp dir that listens on
// TCPAddr only and sends every metric to the caches' line receivers by
// carbon_ch (`127.0.0.1:PORT=INSTANCE`, as carbon-relay's consistent
// hashing places them for the same instance names), started in the
// foreground as a child with -s (no statistics of its own in the
// stream). Stop and Start restart it on the same port.
type CRelay struct {
	Dir     string
	TCPAddr string // plaintext line receiver, "127.0.0.1:PORT"
	PID     int    // 0 while stopped

	bin, conf, log string
	done           chan struct{} // closed when the running process has exited
	closed         bool
}

// StartCRelay writes the config and starts carbon-c-relay sending to
// caches, each of which needs an Instance of its own, and returns once it
// accepts connections.
func StartCRelay(ctx context.Context, caches ...*Carbon) (*CRelay, error) {
	dests, err := destinations("carbon-c-relay", caches, func(c *Carbon) string { return c.TCPAddr + "=" + c.Instance })
	if err != nil {
		return nil, err
	}
	bin, err := findProgram("carbon-c-relay", "apt-get install carbon-c-relay")
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, carbonStartTimeout)
	defer cancel()
	return retryStart(ctx, 3, anyError, func() (*CRelay, error) { return startCRelayOnce(ctx, bin, dests) })
}

// NewCRelay is StartCRelay for tests: it fails t on error and stops
// carbon-c-relay when the test ends.
func NewCRelay(t testing.TB, caches ...*Carbon) *CRelay {
	t.Helper()
	NeedsPeer(t, "carbon-c-relay")
	r, err := StartCRelay(context.Background(), caches...)
	return stopAtEnd(t, r, err)
}

func startCRelayOnce(ctx context.Context, bin string, dests []string) (r *CRelay, err error) {
	dir, err := os.MkdirTemp("", "hm")
	if err != nil {
		return nil, fmt.Errorf("carbon-c-relay temp dir: %w", err)
	}
	r = &CRelay{Dir: dir, bin: bin, conf: filepath.Join(dir, "relay.conf"), log: filepath.Join(dir, "relay.log")}
	defer func() {
		if err != nil {
			_ = r.Close()
		}
	}()
	port, err := freePort()
	if err != nil {
		return r, err
	}
	r.TCPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := fmt.Sprintf(`listen
    type linemode
        %s proto tcp
    ;

cluster caches
    carbon_ch replication 1
        %s
    ;

match *
    send to caches
    stop
    ;
`, r.TCPAddr, strings.Join(dests, "\n        "))
	if err := os.WriteFile(r.conf, []byte(conf), 0o644); err != nil {
		return r, fmt.Errorf("writing %s: %w", r.conf, err)
	}
	return r, r.Start(ctx)
}

// Start starts carbon-c-relay again after Stop, on the same port, and
// returns once it accepts connections.
func (r *CRelay) Start(ctx context.Context) error {
	if r.closed {
		return errors.New("carbon-c-relay: Start after Close")
	}
	if r.PID != 0 {
		return fmt.Errorf("carbon-c-relay: already running, pid %d", r.PID)
	}
	ctx, cancel := withDefaultTimeout(ctx, carbonStartTimeout)
	defer cancel()
	cmd := exec.Command(r.bin, "-f", r.conf, "-s", "-q", strconv.Itoa(CRelayQueueSize), "-l", r.log)
	cmd.Dir = r.Dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("carbon-c-relay -f %s: %w", r.conf, err)
	}
	r.PID = cmd.Process.Pid
	r.done = make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(r.done)
	for {
		conn, err := net.DialTimeout("tcp", r.TCPAddr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-r.done:
			r.PID = 0
			if strings.Contains(fileTail(r.log), "Address already in use") {
				return fmt.Errorf("carbon-c-relay on %s: %w", r.TCPAddr, errAddrInUse)
			}
			return fmt.Errorf("carbon-c-relay exited before %s accepted: %s", r.TCPAddr, fileTail(r.log))
		default:
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for carbon-c-relay on %s: %w: %s", r.TCPAddr, err, fileTail(r.log))
		}
	}
}

// Stop stops carbon-c-relay (SIGTERM: it first sends what it queued) and
// waits for it to exit, keeping its dir and port for Start. Stopping a
// stopped relay does nothing.
func (r *CRelay) Stop() error {
	if r.PID == 0 {
		return nil
	}
	pid := r.PID
	r.PID = 0
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-r.done:
		return nil
	case <-time.After(15 * time.Second):
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	<-r.done
	return fmt.Errorf("carbon-c-relay pid %d did not stop within 15s of SIGTERM: killed", pid)
}

// Close stops carbon-c-relay and removes Dir. It is safe to call more
// than once.
func (r *CRelay) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	if err := r.Stop(); err != nil {
		errs = append(errs, err)
	}
	if r.Dir != "" {
		if err := os.RemoveAll(r.Dir); err != nil {
			errs = append(errs, fmt.Errorf("removing carbon-c-relay dir: %w", err))
		}
	}
	return errors.Join(errs...)
}
