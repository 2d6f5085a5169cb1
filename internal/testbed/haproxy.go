package testbed

import (
	"bufio"
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
	"testing"
	"time"
)

// HAProxyOptions chooses what the started HAProxy serves.
type HAProxyOptions struct {
	// Backends x ServersPerBackend generated http proxies (names "be_%04d",
	// servers "srv_%02d", both counting from 1: see GeneratedBackend and
	// GeneratedServer), each a listen section with its own frontend on a
	// unix socket in Dir, all servers pointing at live loopback listeners run
	// by the test bed. 0 means the standard scenario instead (see StartHAProxy).
	Backends, ServersPerBackend int
	Checks                      bool   // health checks on generated servers (inter 2s)
	Extra                       string // raw config appended after the generated sections
	Global                      string // lines added to the global section ("localpeer pa")
	// MasterWorker starts `haproxy -W -S MasterSocket -f CFG`: a master
	// process with its master CLI, and workers (see haproxy_master.go).
	MasterWorker bool
	// Binary is the haproxy to run; empty, HAProxyBinary's.
	Binary string
}

// HAProxy is a running haproxy started with `haproxy -f CFG` (daemon, pid
// file), stopped by its pid; with MasterWorker, `haproxy -W -S
// MasterSocket -f CFG`, stopped by the master's pid and then its workers'.
type HAProxy struct {
	Dir          string // temp dir: haproxy.cfg, sockets, pid file
	AdminSocket  string // unix stats socket, level admin
	UserSocket   string // unix stats socket, level user
	TCPAddr      string // "127.0.0.1:PORT" stats socket, level admin
	StatsURL     string // "http://127.0.0.1:PORT/stats" HTTP stats page (no auth)
	AuthStatsURL string // same page behind basic auth, user "admin" password "secret"
	// PID is HAProxy's pid; with MasterWorker, the master's.
	PID int
	// Version is what its show info says: "2.6.12-1+deb12u4".
	Version string
	// MasterSocket is the master CLI (level admin), with MasterWorker only.
	MasterSocket string

	// Addresses of the standard scenario's proxies (empty otherwise).
	FrontendAddr string // "www.example-fe", mode http
	TCPProxyAddr string // "db_tcp-1", mode tcp

	live   *liveServers
	closed bool
}

// Standard scenario names, as StartHAProxy documents them.
const (
	ScenarioFrontend = "www.example-fe"
	ScenarioBackend  = "app.v1"
	ScenarioTCP      = "db_tcp-1"
	ScenarioTCPSrv   = "pg.1"
)

// ScenarioStatus is the status column of each standard-scenario server
// once StartHAProxy has returned: proxy -> server -> status.
var ScenarioStatus = map[string]map[string]string{
	ScenarioBackend: {
		"web-1": "UP",
		"web-2": "DOWN",
		"web:3": "MAINT",
		"web-4": "DRAIN",
		"web-5": "no check",
	},
	ScenarioTCP: {ScenarioTCPSrv: "UP"},
}

// haproxyStartTimeout bounds one start attempt when ctx has no deadline.
const haproxyStartTimeout = 2 * time.Minute

// StartHAProxy starts haproxy with a generated config and returns once its
// admin socket answers and, for the standard scenario, every server has
// settled into its documented state:
//
//	frontend "www.example-fe" (mode http, loopback port) -> default_backend "app.v1"
//	backend  "app.v1" (mode http, balance roundrobin), checks inter 100ms fall 1 rise 1:
//	    "web-1"  UP        (check, to a live HTTP listener)
//	    "web-2"  DOWN      (check, to a closed loopback port)
//	    "web:3"  MAINT     ("disabled" keyword)
//	    "web-4"  DRAIN     (set with "set server app.v1/web-4 state drain" after start)
//	    "web-5"  no check  (no "check" keyword)
//	listen   "db_tcp-1" (mode tcp, loopback port), server "pg.1" UP (check, live TCP echo listener)
//	listen   "stats" serving StatsURL, listen "stats_auth" serving AuthStatsURL.
func StartHAProxy(ctx context.Context, opts HAProxyOptions) (*HAProxy, error) {
	if opts.Backends < 0 || opts.ServersPerBackend < 0 {
		return nil, fmt.Errorf("haproxy options: Backends (%d) and ServersPerBackend (%d) must not be negative", opts.Backends, opts.ServersPerBackend)
	}
	if opts.Backends > 0 && opts.ServersPerBackend == 0 {
		return nil, fmt.Errorf("haproxy options: ServersPerBackend must be set with Backends = %d", opts.Backends)
	}
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = HAProxyBinary(ctx); err != nil {
			return nil, err
		}
	}
	ctx, cancel := withDefaultTimeout(ctx, haproxyStartTimeout)
	defer cancel()
	// A port taken between choosing it and binding it: try other ports.
	addrInUse := func(err error) bool { return errors.Is(err, errAddrInUse) }
	return retryStart(ctx, 5, addrInUse, func() (*HAProxy, error) { return startHAProxyOnce(ctx, bin, opts) })
}

// NewHAProxy is StartHAProxy for tests: it fails t on error and stops
// HAProxy when the test ends.
func NewHAProxy(t testing.TB, opts HAProxyOptions) *HAProxy {
	t.Helper()
	NeedsPeer(t, "HAProxy")
	h, err := StartHAProxy(context.Background(), opts)
	return stopAtEnd(t, h, err)
}

var errAddrInUse = errors.New("address already in use")

func startHAProxyOnce(ctx context.Context, bin string, opts HAProxyOptions) (h *HAProxy, err error) {
	dir, err := os.MkdirTemp("", "hm")
	if err != nil {
		return nil, fmt.Errorf("haproxy temp dir: %w", err)
	}
	h = &HAProxy{
		Dir:         dir,
		AdminSocket: filepath.Join(dir, "admin.sock"),
		UserSocket:  filepath.Join(dir, "user.sock"),
	}
	if opts.MasterWorker {
		h.MasterSocket = filepath.Join(dir, "master.sock")
	}
	defer func() {
		if err != nil {
			_ = h.Close()
		}
	}()
	nTCP := 0
	if opts.Backends == 0 {
		nTCP = 1
	}
	if h.live, err = startLiveServers(2, nTCP); err != nil {
		return h, fmt.Errorf("haproxy live backends: %w", err)
	}
	cfg, err := h.config(opts)
	if err != nil {
		return h, err
	}
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return h, fmt.Errorf("writing %s: %w", cfgPath, err)
	}
	if err := h.launch(ctx, bin, cfgPath); err != nil {
		return h, err
	}
	if err := h.waitReady(ctx); err != nil {
		return h, err
	}
	if opts.Backends == 0 {
		if err := h.settleScenario(ctx); err != nil {
			return h, err
		}
	}
	return h, nil
}

// launch runs haproxy, which daemonises: the parent exits once the worker
// runs and the pid file is written.
func (h *HAProxy) launch(ctx context.Context, bin, cfgPath string) error {
	var out bytes.Buffer
	args := []string{"-f", cfgPath}
	if h.MasterSocket != "" {
		args = append([]string{"-W", "-S", h.MasterSocket}, args...)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = h.Dir
	cmd.Stdout = &out
	cmd.Stderr = &out
	pidfile := filepath.Join(h.Dir, "haproxy.pid")
	if err := cmd.Run(); err != nil {
		// Interrupted after forking: find the worker so Close stops it.
		if data, rerr := os.ReadFile(pidfile); rerr == nil {
			if f := strings.Fields(string(data)); len(f) > 0 {
				h.PID, _ = strconv.Atoi(f[0])
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("haproxy -f %s: %w", cfgPath, ctx.Err())
		}
		msg := tail(out.Bytes(), 2000)
		if strings.Contains(msg, "Address already in use") || strings.Contains(msg, "cannot bind") {
			return fmt.Errorf("haproxy -f %s: %w: %s", cfgPath, errAddrInUse, msg)
		}
		return fmt.Errorf("haproxy -f %s: %w: %s", cfgPath, err, msg)
	}
	pid, err := readPIDFile(ctx, pidfile)
	if err != nil {
		return fmt.Errorf("haproxy -f %s: %w", cfgPath, err)
	}
	h.PID = pid
	return nil
}

// waitReady polls the admin socket until it answers `show info`.
func (h *HAProxy) waitReady(ctx context.Context) error {
	for {
		out, err := h.Command(ctx, "show info")
		if err == nil && strings.Contains(out, "Pid:") {
			if _, rest, ok := strings.Cut(out, "\nVersion: "); ok {
				h.Version, _, _ = strings.Cut(rest, "\n")
			}
			return nil
		}
		if !processAlive(h.PID) {
			return fmt.Errorf("haproxy pid %d exited before its admin socket %s answered", h.PID, h.AdminSocket)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for haproxy admin socket %s: %w", h.AdminSocket, err)
		}
	}
}

// settleScenario sets web-4 to drain and waits for every server's state.
func (h *HAProxy) settleScenario(ctx context.Context) error {
	out, err := h.Command(ctx, "set server "+ScenarioBackend+"/web-4 state drain")
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "" {
		return fmt.Errorf("set server %s/web-4 state drain on %s: %s", ScenarioBackend, h.AdminSocket, strings.TrimSpace(out))
	}
	for proxy, servers := range ScenarioStatus {
		for server, want := range servers {
			if err := h.WaitStatus(ctx, proxy, server, want); err != nil {
				return err
			}
		}
	}
	if err := h.WaitStatus(ctx, ScenarioBackend, "BACKEND", "UP"); err != nil {
		return err
	}
	// Servers start UP before their first check: wait for it to pass.
	checks := [][3]string{{ScenarioBackend, "web-1", "L7OK"}, {ScenarioBackend, "web-4", "L7OK"}, {ScenarioTCP, ScenarioTCPSrv, "L4OK"}}
	for _, c := range checks {
		if err := h.waitColumn(ctx, c[0], c[1], "check_status", c[2]); err != nil {
			return err
		}
	}
	return nil
}

// waitColumn polls `show stat` until proxy/server's column starts with want.
func (h *HAProxy) waitColumn(ctx context.Context, proxy, server, column, want string) error {
	last := ""
	for {
		out, err := h.Command(ctx, "show stat")
		if err == nil {
			if last, err = columnOf(out, proxy, server, column); err == nil && strings.HasPrefix(last, want) {
				return nil
			}
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for %s of %s/%s to be %q on %s: %w (last %q)", column, proxy, server, want, h.AdminSocket, err, last)
		}
	}
}

// commandTimeout bounds Command when ctx has no deadline.
const commandTimeout = 30 * time.Second

// Command sends one command line to the admin socket and returns the
// whole answer (HAProxy closes the connection after it).
func (h *HAProxy) Command(ctx context.Context, cmd string) (string, error) {
	return SocketCommand(ctx, "unix", h.AdminSocket, cmd)
}

// SocketCommand sends one command line to any HAProxy stats socket
// (network "unix" with a path, or "tcp" with "127.0.0.1:PORT", such as
// UserSocket or TCPAddr) and returns the whole answer. Without a deadline
// in ctx it gives up after 30 s.
func SocketCommand(ctx context.Context, network, addr, cmd string) (string, error) {
	ctx, cancel := withDefaultTimeout(ctx, commandTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return "", fmt.Errorf("%q on %s: %w", cmd, addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("%q on %s: %w", cmd, addr, err)
	}
	data, err := io.ReadAll(conn)
	if err != nil {
		return string(data), fmt.Errorf("%q on %s: %w", cmd, addr, err)
	}
	return string(data), nil
}

// Status returns the status column of proxy/server from one `show stat`.
func (h *HAProxy) Status(ctx context.Context, proxy, server string) (string, error) {
	out, err := h.Command(ctx, "show stat")
	if err != nil {
		return "", err
	}
	return statusOf(out, proxy, server)
}

// WaitStatus polls `show stat` until proxy/server's status starts with
// want ("UP", "DOWN", "MAINT", "no check"...) or ctx ends (30 s when ctx
// has no deadline).
func (h *HAProxy) WaitStatus(ctx context.Context, proxy, server, want string) error {
	ctx, cancel := withDefaultTimeout(ctx, commandTimeout)
	defer cancel()
	last := ""
	var lastErr error
	for {
		st, err := h.Status(ctx, proxy, server)
		if err == nil && strings.HasPrefix(st, want) {
			return nil
		}
		last, lastErr = st, err
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			if lastErr != nil {
				return fmt.Errorf("waiting for %s/%s to be %q on %s: %w (last error: %v)", proxy, server, want, h.AdminSocket, err, lastErr)
			}
			return fmt.Errorf("waiting for %s/%s to be %q on %s: %w (last status %q)", proxy, server, want, h.AdminSocket, err, last)
		}
	}
}

// statusOf finds proxy/server's status in a `show stat` CSV answer.
func statusOf(csv, proxy, server string) (string, error) {
	return columnOf(csv, proxy, server, "status")
}

// columnOf finds one cell of proxy/server's row in a `show stat` CSV
// answer, mapping columns by header name.
func columnOf(csv, proxy, server, column string) (string, error) {
	sc := bufio.NewScanner(strings.NewReader(csv))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	col := map[string]int{}
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# ") {
			for i, name := range strings.Split(strings.TrimPrefix(line, "# "), ",") {
				col[name] = i
			}
			continue
		}
		cells := strings.Split(line, ",")
		px, okPx := col["pxname"]
		sv, okSv := col["svname"]
		st, okSt := col[column]
		if !okPx || !okSv || !okSt {
			return "", fmt.Errorf("show stat answer has no header with pxname, svname and %s", column)
		}
		if len(cells) > st && len(cells) > sv && cells[px] == proxy && cells[sv] == server {
			return cells[st], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading show stat answer: %w", err)
	}
	return "", fmt.Errorf("%s/%s not in show stat", proxy, server)
}

// Close stops HAProxy by its pid, waits for it to exit, stops the live
// listeners and removes Dir. It is safe to call more than once.
func (h *HAProxy) Close() error {
	var errs []error
	if h.closed {
		return nil
	}
	h.closed = true
	workers := h.workerPIDs()
	if h.PID > 0 {
		if err := stopProcess(h.PID, 10*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("haproxy: %w", err))
		}
	}
	for _, pid := range workers {
		if err := stopProcess(pid, 10*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("haproxy worker: %w", err))
		}
	}
	if h.live != nil {
		h.live.close()
		h.live = nil
	}
	if h.Dir != "" {
		if err := os.RemoveAll(h.Dir); err != nil {
			errs = append(errs, fmt.Errorf("removing haproxy dir: %w", err))
		}
	}
	return errors.Join(errs...)
}
