package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StatsdVersion is the statsd release the test bed installs from npm.
const StatsdVersion = "0.9.0"

// Statsd is a running statsd (npm statsd@0.9.0, graphite backend) flushing
// to a carbon line receiver. With the backend's default legacy namespace, a
// gauge "NAME" lands in carbon as "stats.gauges.NAME" (after the backend's
// key sanitising: whitespace to "_", "/" to "-", anything outside
// [a-zA-Z0-9_.;=-] removed); statsd also sends its own "stats.statsd.*",
// "statsd.*" and "stats_counts.statsd.*" metrics. Gauges are never
// deleted (deleteGauges false): the last value is sent at each flush.
type Statsd struct {
	Addr     string // UDP "127.0.0.1:PORT"
	MgmtAddr string // management console, TCP "127.0.0.1:PORT"
	Dir      string

	cmd    *exec.Cmd
	done   chan error
	closed bool
}

// StatsdStatsPrefix is where statsd's graphite backend puts gauges.
const StatsdStatsPrefix = "stats.gauges."

const statsdStartTimeout = 5 * time.Minute // includes the first npm install

// StartStatsd installs statsd into the cache dir on first use (under a
// file lock) and starts it with a generated config: UDP on a free loopback
// port, flushing every flushInterval to the carbon line receiver at
// carbonTCPAddr. It returns once the management port answers "health".
func StartStatsd(ctx context.Context, carbonTCPAddr string, flushInterval time.Duration) (*Statsd, error) {
	if flushInterval <= 0 {
		return nil, fmt.Errorf("statsd flushInterval must be positive, got %v", flushInterval)
	}
	host, port, err := net.SplitHostPort(carbonTCPAddr)
	if err != nil {
		return nil, fmt.Errorf("statsd graphite address %q: %w", carbonTCPAddr, err)
	}
	node, err := findProgram("node", "apt-get install nodejs npm")
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, statsdStartTimeout)
	defer cancel()
	statsJS, err := installStatsd(ctx)
	if err != nil {
		return nil, err
	}
	return retryStart(ctx, 3, anyError, func() (*Statsd, error) {
		return startStatsdOnce(ctx, node, statsJS, host, port, flushInterval)
	})
}

// NewStatsd is StartStatsd for tests with a 1 s flush interval: it fails t
// on error and stops statsd when the test ends.
func NewStatsd(t testing.TB, carbonTCPAddr string) *Statsd {
	t.Helper()
	NeedsPeer(t, "statsd (Node.js and npm)")
	s, err := StartStatsd(context.Background(), carbonTCPAddr, time.Second)
	return stopAtEnd(t, s, err)
}

// installStatsd installs statsd from npm once into CACHE/statsd-VERSION
// and returns the path of stats.js.
func installStatsd(ctx context.Context) (string, error) {
	modules, err := InstallNPM(ctx, "statsd-"+StatsdVersion, "statsd/stats.js", "statsd@"+StatsdVersion)
	if err != nil {
		return "", err
	}
	return filepath.Join(modules, "statsd", "stats.js"), nil
}

func startStatsdOnce(ctx context.Context, node, statsJS, carbonHost, carbonPort string, flush time.Duration) (s *Statsd, err error) {
	dir, err := os.MkdirTemp("", "hm")
	if err != nil {
		return nil, fmt.Errorf("statsd temp dir: %w", err)
	}
	s = &Statsd{Dir: dir}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	udpPort, err := freeUDPPort()
	if err != nil {
		return s, err
	}
	mgmtPort, err := freePort()
	if err != nil {
		return s, err
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(udpPort))
	s.MgmtAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(mgmtPort))
	conf := fmt.Sprintf(`{
  address: "127.0.0.1",
  port: %d,
  mgmt_address: "127.0.0.1",
  mgmt_port: %d,
  graphiteHost: %q,
  graphitePort: %s,
  flushInterval: %d,
  deleteGauges: false,
  backends: ["./backends/graphite"]
}
`, udpPort, mgmtPort, carbonHost, carbonPort, flush.Milliseconds())
	confPath := filepath.Join(dir, "config.js")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return s, fmt.Errorf("writing statsd config: %w", err)
	}
	logFile, err := os.Create(filepath.Join(dir, "statsd.log"))
	if err != nil {
		return s, fmt.Errorf("statsd log: %w", err)
	}
	defer logFile.Close()
	s.cmd = exec.Command(node, statsJS, confPath)
	s.cmd.Dir = filepath.Dir(statsJS)
	s.cmd.Stdout = logFile
	s.cmd.Stderr = logFile
	if err := s.cmd.Start(); err != nil {
		return s, fmt.Errorf("starting statsd: %w", err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	if err := s.waitReady(ctx); err != nil {
		return s, err
	}
	return s, nil
}

// waitReady polls the management port until it answers "health: up".
func (s *Statsd) waitReady(ctx context.Context) error {
	for {
		if s.healthy() {
			return nil
		}
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("statsd exited before its management port %s answered (%v): %s", s.MgmtAddr, err, s.logTail())
		default:
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for statsd on %s: %w: %s", s.MgmtAddr, err, s.logTail())
		}
	}
}

func (s *Statsd) healthy() bool {
	conn, err := net.DialTimeout("tcp", s.MgmtAddr, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("health\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.TrimSpace(line) == "health: up"
}

func (s *Statsd) logTail() string { return fileTail(filepath.Join(s.Dir, "statsd.log")) }

// Close stops statsd, waits for it to exit and removes Dir. It is safe to
// call more than once.
func (s *Statsd) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.cmd != nil && s.cmd.Process != nil && s.done != nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done: //nolint:errcheck // it stopped as asked
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			if err := <-s.done; err != nil && !isSignalExit(err) {
				errs = append(errs, fmt.Errorf("statsd: %w", err))
			}
		}
	}
	if s.Dir != "" {
		if err := os.RemoveAll(s.Dir); err != nil {
			errs = append(errs, fmt.Errorf("removing statsd dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

// PID is the statsd process id, 0 before start.
func (s *Statsd) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func isSignalExit(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}
