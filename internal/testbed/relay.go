package testbed

import (
	"bytes"
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

// RelayMaxQueueSize is the relay's MAX_QUEUE_SIZE: how many datapoints it
// holds for one destination. carbon-relay 1.1.7 drops, silently but for
// "send queue is full" in its clients.log, what arrives for a destination
// whose queue is full: its flow control pauses only carbon-cache's
// receivers. With the default, 1000, a burst of 5000 lines on one
// connection to two caches lost a quarter of them here; one gather of a
// large HAProxy is hundreds of thousands of lines.
const RelayMaxQueueSize = 1000000

// Relay is a running carbon-relay (Debian's graphite-carbon) in
// consistent-hashing mode, in front of carbon-caches: its own carbon.conf
// in a temp dir with a [relay] section, `RELAY_METHOD =
// consistent-hashing`, `REPLICATION_FACTOR = 1` and `DESTINATIONS =
// 127.0.0.1:PICKLE_PORT:INSTANCE, ...` (pickle protocol), its own
// instrumentation off (so the caches hold only what was sent). Stop and
// Start restart it on the same ports.
type Relay struct {
	Dir          string
	TCPAddr      string   // plaintext line receiver, "127.0.0.1:PORT": where clients send
	PickleAddr   string   // its own pickle receiver, "127.0.0.1:PORT"
	Destinations []string // DESTINATIONS, in order: "127.0.0.1:PORT:INSTANCE"
	Instance     string   // --instance
	PID          int      // 0 while stopped

	bin     string
	conf    string
	pidfile string
	logdir  string
	closed  bool
}

// StartRelay writes a carbon.conf in a temp dir, starts `carbon-relay
// --config=FILE --instance=relay --pidfile=FILE --logdir=DIR start` (it
// daemonises) sending to caches by consistent hashing, and returns once
// the line receiver accepts. Each cache needs an Instance of its own
// (StartCarbonWith): carbon's hash ring tells destinations apart by
// address and instance.
func StartRelay(ctx context.Context, caches ...*Carbon) (*Relay, error) {
	dests, err := destinations("carbon-relay", caches, func(c *Carbon) string { return c.PickleAddr + ":" + c.Instance })
	if err != nil {
		return nil, err
	}
	bin, err := findProgram("carbon-relay", "apt-get install graphite-carbon")
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, carbonStartTimeout)
	defer cancel()
	return retryStart(ctx, 3, anyError, func() (*Relay, error) { return startRelayOnce(ctx, bin, dests) })
}

// destinations names each cache for a relay, by dest, after checking
// that each has an instance name of its own: a relay's hash ring tells
// destinations apart by address and instance.
func destinations(relay string, caches []*Carbon, dest func(*Carbon) string) ([]string, error) {
	if len(caches) == 0 {
		return nil, fmt.Errorf("%s: no carbon-cache to send to", relay)
	}
	seen := map[string]bool{}
	var out []string
	for _, c := range caches {
		if c.Instance == "" || seen[c.Instance] {
			return nil, fmt.Errorf("%s: each carbon-cache needs an instance name of its own (StartCarbonWith), got %q", relay, c.Instance)
		}
		seen[c.Instance] = true
		out = append(out, dest(c))
	}
	return out, nil
}

// NewRelay is StartRelay for tests: it fails t on error and stops
// carbon-relay when the test ends.
func NewRelay(t testing.TB, caches ...*Carbon) *Relay {
	t.Helper()
	NeedsPeer(t, "carbon-relay")
	r, err := StartRelay(context.Background(), caches...)
	return stopAtEnd(t, r, err)
}

func startRelayOnce(ctx context.Context, bin string, dests []string) (r *Relay, err error) {
	dir, err := os.MkdirTemp("", "hm")
	if err != nil {
		return nil, fmt.Errorf("carbon-relay temp dir: %w", err)
	}
	r = &Relay{
		Dir:          dir,
		Destinations: dests,
		Instance:     "relay",
		bin:          bin,
		pidfile:      filepath.Join(dir, "carbon-relay.pid"),
		logdir:       filepath.Join(dir, "log"),
	}
	defer func() {
		if err != nil {
			_ = r.Close()
		}
	}()
	if err := r.writeConfig(); err != nil {
		return r, err
	}
	return r, r.Start(ctx)
}

func (r *Relay) writeConfig() error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	r.TCPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	r.PickleAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	conf := fmt.Sprintf(`[relay]
STORAGE_DIR = %[1]s
LOCAL_DATA_DIR = %[1]s/whisper
WHITELISTS_DIR = %[1]s/lists
CONF_DIR = %[1]s
LOG_DIR = %[1]s/log
PID_DIR = %[1]s
ENABLE_LOGROTATION = False
USER =
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = %[2]d
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = %[3]d
ENABLE_UDP_LISTENER = False
RELAY_METHOD = consistent-hashing
REPLICATION_FACTOR = 1
DESTINATIONS = %[4]s
DESTINATION_PROTOCOL = pickle
MAX_QUEUE_SIZE = %[5]d
MAX_DATAPOINTS_PER_MESSAGE = 500
USE_FLOW_CONTROL = True
CARBON_METRIC_INTERVAL = 0
LOG_LISTENER_CONNECTIONS = False
`, r.Dir, ports[0], ports[1], strings.Join(r.Destinations, ", "), RelayMaxQueueSize)
	// carbon-relay refuses to start without a storage-schemas.conf beside
	// carbon.conf, though it stores nothing.
	files := map[string]string{
		"carbon.conf":          conf,
		"storage-schemas.conf": "[everything]\npattern = .*\nretentions = 1s:1h\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(r.Dir, name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("writing carbon-relay %s: %w", name, err)
		}
	}
	r.conf = filepath.Join(r.Dir, "carbon.conf")
	return nil
}

// Start starts carbon-relay again after Stop, on the same ports and with
// the same destinations, and returns once its line receiver accepts. A
// port taken meanwhile by another process is an error.
func (r *Relay) Start(ctx context.Context) error {
	if r.closed {
		return errors.New("carbon-relay: Start after Close")
	}
	if r.PID != 0 {
		return fmt.Errorf("carbon-relay: already running, pid %d", r.PID)
	}
	ctx, cancel := withDefaultTimeout(ctx, carbonStartTimeout)
	defer cancel()
	_ = os.Remove(r.pidfile) // left by a relay that did not stop cleanly
	args := []string{"--config=" + r.conf, "--instance=" + r.Instance, "--pidfile=" + r.pidfile, "--logdir=" + r.logdir, "start"}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Dir = r.Dir
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.Env = append(os.Environ(), "GRAPHITE_ROOT="+r.Dir, "GRAPHITE_STORAGE_DIR="+r.Dir)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("carbon-relay %s: %w: %s", strings.Join(args, " "), err, tail(out.Bytes(), 2000))
	}
	pid, err := readPIDFile(ctx, r.pidfile)
	if err != nil {
		return fmt.Errorf("carbon-relay --config=%s: %w: %s", r.conf, err, tail(out.Bytes(), 2000))
	}
	r.PID = pid
	for {
		conn, err := net.DialTimeout("tcp", r.TCPAddr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if !processAlive(r.PID) {
			r.PID = 0
			return fmt.Errorf("carbon-relay exited before %s accepted: %s", r.TCPAddr, r.logTail())
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for carbon-relay on %s: %w: %s", r.TCPAddr, err, r.logTail())
		}
	}
}

// Stop stops carbon-relay by its pid (SIGTERM: it first sends what it
// holds to the caches) and waits for it to exit, keeping its dir and ports
// for Start. Stopping a stopped relay does nothing.
func (r *Relay) Stop() error {
	if r.PID == 0 {
		return nil
	}
	err := stopProcess(r.PID, 15*time.Second)
	if err != nil {
		return fmt.Errorf("carbon-relay: %w", err)
	}
	r.PID = 0
	return nil
}

func (r *Relay) logTail() string { return fileTail(filepath.Join(r.logdir, "console.log")) }

// Close stops carbon-relay and removes Dir. It is safe to call more than
// once.
func (r *Relay) Close() error {
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
			errs = append(errs, fmt.Errorf("removing carbon-relay dir: %w", err))
		}
	}
	return errors.Join(errs...)
}
