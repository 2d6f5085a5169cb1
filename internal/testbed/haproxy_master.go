package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Master-worker mode (HAProxyOptions.MasterWorker): the master process
// (PID) keeps its master CLI on MasterSocket and runs the workers; the
// stats sockets (AdminSocket, UserSocket, TCPAddr) reach the current
// worker only. A reload starts a new worker; the old one keeps serving the
// connections it has until they end (no hard-stop-after here).

// Processes is what the master's "show proc" lists.
type Processes struct {
	Master         int   // the master's pid
	Reloads        int   // the master's reloads column
	FailedReloads  int   // its "[failed: N]"
	Current        []int // pids under "# workers"
	Old            []int // pids under "# old workers"
	CurrentReloads []int // the reloads column of each Current worker
	OldReloads     []int // the reloads column of each Old worker
}

// MasterCommand sends one command line to the master CLI and returns the
// whole answer. The master keeps a connection open for more lines until
// the client closes its side, so the line is followed by a half-close.
// Without a deadline in ctx it gives up after 30 s.
func (h *HAProxy) MasterCommand(ctx context.Context, cmd string) (string, error) {
	if h.MasterSocket == "" {
		return "", errors.New("haproxy was not started with MasterWorker: no master CLI")
	}
	return MasterCommand(ctx, "unix", h.MasterSocket, cmd)
}

// MasterCommand sends one command line to any HAProxy master CLI and
// returns the whole answer (see HAProxy.MasterCommand).
func MasterCommand(ctx context.Context, network, addr, cmd string) (string, error) {
	ctx, cancel := withDefaultTimeout(ctx, commandTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return "", fmt.Errorf("%q on master CLI %s: %w", cmd, addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("%q on master CLI %s: %w", cmd, addr, err)
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil {
			return "", fmt.Errorf("%q on master CLI %s: %w", cmd, addr, err)
		}
	}
	data, err := io.ReadAll(conn)
	if err != nil {
		return string(data), fmt.Errorf("%q on master CLI %s: %w", cmd, addr, err)
	}
	return string(data), nil
}

// Processes asks the master "show proc", retrying while it reloads (it
// refuses connections, or closes them unanswered, for a moment).
func (h *HAProxy) Processes(ctx context.Context) (Processes, error) {
	ctx, cancel := withDefaultTimeout(ctx, commandTimeout)
	defer cancel()
	for {
		out, err := h.MasterCommand(ctx, "show proc")
		if err == nil {
			var p Processes
			if p, err = parseProcesses(out); err == nil {
				return p, nil
			}
		}
		if serr := sleepCtx(ctx, 20*time.Millisecond); serr != nil {
			return Processes{}, fmt.Errorf("show proc on %s: %w (last error: %v)", h.MasterSocket, serr, err)
		}
	}
}

// parseProcesses reads a "show proc" answer, mapping the columns by the
// header's names: 2.0 to 2.4 have a <relative PID> column ("[was: 1]" for
// an old worker) and no "[failed: N]".
func parseProcesses(out string) (Processes, error) {
	var p Processes
	section := ""
	col := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#<PID>") {
			for i, name := range procFields(strings.TrimPrefix(line, "#")) {
				col[strings.Trim(name, "<>")] = i
			}
			continue
		}
		if strings.HasPrefix(line, "#") {
			section = strings.TrimSpace(strings.TrimPrefix(line, "#"))
			continue
		}
		failed := -1
		if i := strings.Index(line, " [failed: "); i >= 0 {
			rest := line[i+len(" [failed: "):]
			if j := strings.IndexByte(rest, ']'); j >= 0 {
				failed, _ = strconv.Atoi(rest[:j])
				line = line[:i] + rest[j+1:]
			}
		}
		f := procFields(line)
		iPID, okPID := col["PID"]
		iRel, okRel := col["reloads"]
		if !okPID || !okRel {
			return p, fmt.Errorf("show proc has no header with <PID> and <reloads>: %q", out)
		}
		if len(f) <= max(iPID, iRel) {
			continue
		}
		pid, err1 := strconv.Atoi(f[iPID])
		reloads, err2 := strconv.Atoi(f[iRel])
		if err1 != nil || err2 != nil {
			return p, fmt.Errorf("show proc line %q", line)
		}
		switch {
		case section == "" && strings.Contains(line, " master "):
			p.Master, p.Reloads = pid, reloads
			p.FailedReloads = max(failed, 0)
		case section == "workers":
			p.Current = append(p.Current, pid)
			p.CurrentReloads = append(p.CurrentReloads, reloads)
		case section == "old workers":
			p.Old = append(p.Old, pid)
			p.OldReloads = append(p.OldReloads, reloads)
		}
	}
	if p.Master == 0 {
		return p, fmt.Errorf("show proc lists no master: %q", out)
	}
	return p, nil
}

// procFields splits a show proc line on blanks, keeping "<relative PID>"
// and "[was: 1]" whole.
func procFields(line string) []string {
	var out []string
	for _, f := range strings.Fields(line) {
		if n := len(out); n > 0 && unclosed(out[n-1]) {
			out[n-1] += " " + f
			continue
		}
		out = append(out, f)
	}
	return out
}

// unclosed reports a token that starts a "<...>" or "[...]" group it does not
// end.
func unclosed(tok string) bool {
	return (strings.HasPrefix(tok, "<") && !strings.HasSuffix(tok, ">")) ||
		(strings.HasPrefix(tok, "[") && !strings.HasSuffix(tok, "]"))
}

// Reload reloads HAProxy with the master CLI's "reload" command and
// returns once a new current worker answers on the admin socket and,
// for the standard scenario, its servers have settled into their
// documented states, as StartHAProxy does (web-4 set to drain again). It
// returns the new worker's pid. The previous worker stays as an old
// worker while it has connections (see HoldConnection).
func (h *HAProxy) Reload(ctx context.Context) (int, error) {
	ctx, cancel := withDefaultTimeout(ctx, commandTimeout)
	defer cancel()
	before, err := h.Processes(ctx)
	if err != nil {
		return 0, err
	}
	h.SendReload(ctx)
	for {
		p, err := h.Processes(ctx)
		if err != nil {
			return 0, err
		}
		if len(p.Current) == 1 && (len(before.Current) == 0 || p.Current[0] != before.Current[0]) {
			if out, err := h.Command(ctx, "show info"); err == nil && strings.Contains(out, "\nPid: "+strconv.Itoa(p.Current[0])+"\n") {
				if h.FrontendAddr != "" {
					if err := h.settleScenario(ctx); err != nil {
						return 0, err
					}
				}
				return p.Current[0], nil
			}
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return 0, fmt.Errorf("waiting for a new worker after reload on %s: %w", h.MasterSocket, err)
		}
	}
}

// FailReload reloads HAProxy with a configuration it refuses (an unknown
// keyword appended), waits until the master has counted the reload and
// answers again, then puts the good configuration back. The workers go on
// as they were; it returns the master's processes after the reload.
func (h *HAProxy) FailReload(ctx context.Context) (Processes, error) {
	ctx, cancel := withDefaultTimeout(ctx, commandTimeout)
	defer cancel()
	before, err := h.Processes(ctx)
	if err != nil {
		return Processes{}, err
	}
	cfg := filepath.Join(h.Dir, "haproxy.cfg")
	good, err := os.ReadFile(cfg)
	if err != nil {
		return Processes{}, err
	}
	if err := os.WriteFile(cfg, append(slices.Clone(good), "no_such_keyword\n"...), 0o644); err != nil {
		return Processes{}, err
	}
	defer os.WriteFile(cfg, good, 0o644) //nolint:errcheck // best effort; the next read tells
	h.SendReload(ctx)
	for {
		p, err := h.Processes(ctx)
		if err != nil {
			return p, err
		}
		if p.Reloads > before.Reloads {
			return p, os.WriteFile(cfg, good, 0o644)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return p, fmt.Errorf("waiting for the master on %s to count a failed reload: %w", h.MasterSocket, err)
		}
	}
}

// reloadAnswerWait bounds the wait for the answer of "reload": 2.6's
// master closes the connection as it re-executes itself, 3.x's answers
// first, 2.2's keeps the connection open without answering.
const reloadAnswerWait = 2 * time.Second

// SendReload sends "reload" to the master CLI and returns its answer, if
// it gives one within 2 s (3.0 and later: "Success=1" or "Success=0", then
// the new worker's startup log); it does not wait for the reload to end.
func (h *HAProxy) SendReload(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, reloadAnswerWait)
	defer cancel()
	out, _ := h.MasterCommand(ctx, "reload")
	return out
}

// workerPIDs lists the workers of a master-worker HAProxy, so that Close
// can stop the old ones the master leaves running; nil otherwise.
func (h *HAProxy) workerPIDs() []int {
	if h.MasterSocket == "" || !processAlive(h.PID) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := h.Processes(ctx)
	if err != nil {
		return nil
	}
	return append(p.Current, p.Old...)
}

// HeldConnection is a TCP session through the standard scenario's mode
// tcp proxy, kept alive by a ping every second so that HAProxy's client
// and server timeouts never end it.
type HeldConnection struct {
	conn net.Conn
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu  sync.Mutex
	err error
}

// HoldConnection opens a session through TCPProxyAddr (the echo server
// behind "db_tcp-1") and returns once a byte made the round trip. The
// worker serving it stays alive after a reload until Close.
func (h *HAProxy) HoldConnection(ctx context.Context) (*HeldConnection, error) {
	if h.TCPProxyAddr == "" {
		return nil, errors.New("no mode tcp proxy: HoldConnection needs the standard scenario")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", h.TCPProxyAddr)
	if err != nil {
		return nil, fmt.Errorf("connecting through %s: %w", h.TCPProxyAddr, err)
	}
	hc := &HeldConnection{conn: conn, stop: make(chan struct{})}
	if err := hc.ping(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("echo through %s: %w", h.TCPProxyAddr, err)
	}
	hc.wg.Add(1)
	go hc.keepAlive()
	return hc, nil
}

func (hc *HeldConnection) ping() error {
	if err := hc.conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, err := hc.conn.Write([]byte{'.'}); err != nil {
		return err
	}
	var b [1]byte
	_, err := io.ReadFull(hc.conn, b[:])
	return err
}

func (hc *HeldConnection) keepAlive() {
	defer hc.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-hc.stop:
			return
		case <-t.C:
			if err := hc.ping(); err != nil {
				hc.mu.Lock()
				hc.err = err
				hc.mu.Unlock()
				return
			}
		}
	}
}

// Err returns the error that ended the session early, if any.
func (hc *HeldConnection) Err() error {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	return hc.err
}

// Close ends the session; the old worker serving it then exits. It is
// safe to call more than once.
func (hc *HeldConnection) Close() error {
	var err error
	hc.once.Do(func() {
		close(hc.stop)
		hc.wg.Wait()
		err = hc.conn.Close()
	})
	return err
}
