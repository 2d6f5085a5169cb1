package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
)

// Signals never cost data: a closed stderr or stdout (SIGPIPE) never kills
// the process, and SIGHUP, SIGTERM and SIGINT end the pipeline and the
// execd output through their shutdown, which spools what Graphite did not
// take. Graphite is down in these tests (a closed port) so that everything
// ends up in the spool, counted there.

// spooled returns the line protocol lines of every spool file under dir,
// whatever the files are called, compressed or not.
func spooled(t *testing.T, dir string) []string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == dir {
			return nil
		}
		if err != nil || !d.IsDir() {
			return err
		}
		files, err := testbed.SpoolFiles(path)
		if err != nil {
			return err
		}
		for _, f := range files {
			l, err := testbed.SpoolFileLines(f)
			if err != nil {
				return err
			}
			lines = append(lines, l...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

var savedLine = regexp.MustCompile(`(?m)^W! \[outputs\.graphite_statsd\] (\d+) undelivered metrics saved to `)

// savedCount sums what the log says was saved to the spool; false if it
// says nothing was.
func savedCount(stderr string) (int, bool) {
	m := savedLine.FindAllStringSubmatch(stderr, -1)
	n := 0
	for _, s := range m {
		v, _ := strconv.Atoi(s[1])
		n += v
	}
	return n, m != nil
}

// outputFailed matches the output's first report of a failed delivery.
var outputFailed = regexp.MustCompile(`(?m)^E! \[outputs\.graphite_statsd\] `)

// waitingLine is a line of the output saying how many metrics its buffer
// holds for the next try: the failure (E!) or, under -debug, a flush that
// all servers' backoff skipped (D!).
var waitingLine = regexp.MustCompile(`(?m)^[ED]! \[outputs\.graphite_statsd\] .*\b(\d+) metrics wait\b`)

// lastWaiting is the count of stderr's last waitingLine, -1 without one.
func lastWaiting(stderr string) int {
	m := waitingLine.FindAllStringSubmatch(stderr, -1)
	if len(m) == 0 {
		return -1
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// checkSpooled checks that the log says how many metrics were saved and
// the spool holds exactly that many (want of them, unless want < 0); it
// returns the spooled lines.
func checkSpooled(t *testing.T, stderr, spool string, want int) []string {
	t.Helper()
	lines := spooled(t, spool)
	n, ok := savedCount(stderr)
	switch {
	case !ok:
		t.Errorf("the log does not say how many metrics were saved:\n%s", truncateForLog(stderr))
	case n != len(lines):
		t.Errorf("the log says %d metrics were saved, the spool holds %d", n, len(lines))
	}
	if want >= 0 && len(lines) != want {
		t.Errorf("the spool holds %d metrics, want %d", len(lines), want)
	}
	if len(lines) == 0 {
		t.Error("nothing spooled")
	}
	return lines
}

// signalConf is an execd output (no HAProxy socket) or pipeline config to
// a Graphite at addr, spooling to spool.
func signalConf(t *testing.T, dir, socket, addr, spool string) string {
	t.Helper()
	in := ""
	if socket != "" {
		in = fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n  timeout = \"5s\"\n", socket)
	}
	return writeFile(t, dir, "signal.conf", fmt.Sprintf(`
[agent]
  hostname = "sh"
  flush_interval = "1s"
%s[[outputs.graphite_statsd]]
  servers = [%q]
  format = "graphite"
  transport = "tcp"
  prefix = "s"
  timeout = "2s"
  spool_dir = %q
`, in, addr, spool))
}

// metricLines is n lines of line protocol, one field each, a minute old.
func metricLines(n int) string {
	ts := time.Now().Add(-time.Minute).Unix() * 1e9
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "sig,host=h,k=p%04d v=%d %d\n", i, i, ts)
	}
	return b.String()
}

// exitStatus is the status cmd.Wait's err reports, failing the test when
// a signal killed the process.
func exitStatus(t *testing.T, err error, stderr string) int {
	t.Helper()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case !errors.As(err, &exit):
		t.Fatalf("waiting: %v", err)
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("killed by %v; stderr:\n%s", ws.Signal(), truncateForLog(stderr))
	}
	return exit.ExitCode()
}

// lineCounter is a Graphite that counts the lines it reads.
type lineCounter struct {
	mu sync.Mutex
	n  int
}

func countLines(t *testing.T, addr string) *lineCounter {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	c := &lineCounter{}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				s := bufio.NewScanner(conn)
				for s.Scan() {
					c.mu.Lock()
					c.n++
					c.mu.Unlock()
				}
			}()
		}
	}()
	return c
}

func (c *lineCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func TestSignalPIPEOnStderrExecdOutputSpools(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	down := testbed.ClosedAddr(t)
	conf := signalConf(t, dir, "", down, spool)
	const n = 1000

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-config", conf)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, metricLines(n)); err != nil {
		t.Fatal(err)
	}
	// Telegraf died: nobody reads our stderr any more, our stdin ends.
	stderr.Close()
	stdin.Close()
	if code := exitStatus(t, cmd.Wait(), ""); code != 1 {
		t.Errorf("exit %d, want 1 (metrics undelivered, spooled)", code)
	}
	if got := len(spooled(t, spool)); got != n {
		t.Fatalf("the spool holds %d metrics, want %d", got, n)
	}

	// Graphite is back: the next run delivers all of them.
	graphite := countLines(t, down)
	_, errs, code := runBinary(t, bin, "", "-config", conf)
	noPanic(t, errs)
	if code != 0 {
		t.Errorf("second run: exit %d, want 0; stderr:\n%s", code, errs)
	}
	waitUntil(t, 10*time.Second, fmt.Sprintf("%d lines at Graphite", n), func() bool { return graphite.count() >= n })
	time.Sleep(200 * time.Millisecond)
	if got := graphite.count(); got != n {
		t.Errorf("Graphite got %d lines, want %d", got, n)
	}
	if left := spooled(t, spool); len(left) != 0 {
		t.Errorf("%d metrics still spooled after they were delivered", len(left))
	}
}

func TestSignalPIPEOnStdoutEndsExecdInput(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	conf := writeFile(t, t.TempDir(), "in.conf", fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n", h.AdminSocket))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-config", conf, "-poll_interval_disabled")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testbed.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdout.Close() // Telegraf went away
	if _, err := io.WriteString(stdin, "\n"); err != nil {
		t.Fatal(err)
	}
	code := exitStatus(t, cmd.Wait(), stderr.String())
	noPanic(t, stderr.String())
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !regexp.MustCompile(`(?m)^E! writing metrics to stdout: .*broken pipe`).MatchString(stderr.String()) {
		t.Errorf("no E! line saying stdout is broken:\n%s", stderr.String())
	}
}

func TestSignalStopsThroughTheShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	for _, mode := range []string{"execd output", "pipeline"} {
		for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT} {
			name := shim.SignalName(sig)
			t.Run(mode+"/"+name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				spool := filepath.Join(dir, "spool")
				var p *proc
				want := -1
				if mode == "pipeline" {
					p = startProc(t, bin, "-config", signalConf(t, dir, h.AdminSocket, testbed.ClosedAddr(t), spool), "-poll_interval", "1s")
				} else {
					want = 1000
					p = startProc(t, bin, "-config", signalConf(t, dir, "", testbed.ClosedAddr(t), spool), "-debug")
					defer p.stdin.Close()
					if _, err := io.WriteString(p.stdin, metricLines(want)); err != nil {
						t.Fatal(err)
					}
				}
				// Metrics were gathered or read, and their delivery failed;
				// in the execd output, the log says all of stdin waits.
				waitUntil(t, 30*time.Second, "a failed delivery", func() bool {
					stderr := p.stderr.String()
					return outputFailed.MatchString(stderr) && (want < 0 || lastWaiting(stderr) == want)
				})
				if err := p.cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				<-p.done
				stderr := p.stderr.String()
				noPanic(t, stderr)
				if code := exitStatus(t, p.err, stderr); code != 1 {
					t.Errorf("exit %d, want 1 (metrics undelivered, spooled); stderr:\n%s", code, stderr)
				}
				if !strings.Contains(stderr, "I! received "+name+": shutting down") {
					t.Errorf("the log does not say %s ended the run:\n%s", name, stderr)
				}
				lines := checkSpooled(t, stderr, spool, want)
				if mode == "pipeline" {
					for _, l := range lines {
						if !strings.HasPrefix(l, "haproxy") {
							t.Fatalf("spooled %q, not a gathered metric", l)
						}
					}
				}
			})
		}
	}
}

// silentSocket is a stats socket that takes the command and never
// answers; accepted tells each connection.
func silentSocket(t *testing.T, accepted chan<- struct{}) string {
	t.Helper()
	return testbed.NewFakeSocket(t, func(c net.Conn, _ string) {
		select {
		case accepted <- struct{}{}:
		default:
		}
		io.Copy(io.Discard, c) //nolint:errcheck // until the client goes
	}).Path
}

func TestSignalSecondTERMWhileShuttingDown(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	accepted := make(chan struct{}, 1)
	silent := silentSocket(t, accepted)
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	// Each gather waits 3s for the silent socket: the gather in flight
	// when SIGTERM comes holds the shutdown up for seconds.
	conf := writeFile(t, dir, "pipeline.conf", fmt.Sprintf(`
[agent]
  hostname = "sh"
[[inputs.haproxy]]
  servers = [%q, %q]
  timeout = "3s"
[[outputs.graphite_statsd]]
  servers = [%q]
  prefix = "s"
  transport = "tcp"
  timeout = "2s"
  spool_dir = %q
`, h.AdminSocket, silent, testbed.ClosedAddr(t), spool))
	p := startProc(t, bin, "-config", conf, "-poll_interval", "1s")
	waitUntil(t, 30*time.Second, "a gather and a failed delivery", func() bool { return outputFailed.MatchString(p.stderr.String()) })
	<-accepted // drop a connection accepted before
	select {
	case <-accepted: // the next gather started: it takes 3s
	case <-time.After(30 * time.Second):
		t.Fatal("no second gather")
	}
	sent := time.Now()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGTERM, syscall.SIGINT} {
		if err := p.cmd.Process.Signal(sig); err != nil {
			t.Fatalf("%v %s after the first signal: %v", sig, time.Since(sent), err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	code := p.wait(t, 30*time.Second)
	stderr := p.stderr.String()
	t.Logf("exited %d, %s after the first SIGTERM; stderr:\n%s", code, time.Since(sent).Round(time.Millisecond), stderr)
	noPanic(t, stderr)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{
		"I! received SIGTERM: shutting down",
		"W! received SIGTERM while shutting down: ignored",
		"W! received SIGINT while shutting down: ignored",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	checkSpooled(t, stderr, spool, -1)
}

// inProcess runs runWithSignals with signals sent on the returned channel.
type inProcess struct {
	sigs           chan os.Signal
	stdin          *io.PipeWriter
	stdout, stderr *testbed.SyncBuffer
	code           chan int
}

func startInProcess(t *testing.T, args ...string) *inProcess {
	t.Helper()
	r, w := io.Pipe()
	p := &inProcess{sigs: make(chan os.Signal, 4), stdin: w, stdout: &testbed.SyncBuffer{}, stderr: &testbed.SyncBuffer{}, code: make(chan int, 1)}
	go func() { p.code <- runWithSignals(context.Background(), p.sigs, args, r, p.stdout, p.stderr) }()
	t.Cleanup(func() { _ = w.Close() })
	return p
}

func (p *inProcess) wait(t *testing.T) int {
	t.Helper()
	select {
	case c := <-p.code:
		return c
	case <-time.After(30 * time.Second):
		t.Fatalf("still running; stderr:\n%s", p.stderr)
	}
	return 0
}

func TestSignalRoutesInExecdInput(t *testing.T) {
	if testing.Short() {
		t.Skip("needs HAProxy")
	}
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	conf := writeFile(t, t.TempDir(), "in.conf", fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n", h.AdminSocket))
	p := startInProcess(t, "-config", conf, "-poll_interval_disabled")
	for i, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2} {
		p.sigs <- sig
		waitUntil(t, 10*time.Second, fmt.Sprintf("gather %d, asked by %v", i+1, sig), func() bool {
			return strings.Count(p.stdout.String(), "haproxy_info,") == i+1
		})
	}
	p.sigs <- syscall.SIGTERM
	p.sigs <- syscall.SIGINT
	if code := p.wait(t); code != 0 {
		t.Errorf("exit %d, want 0; stderr:\n%s", code, p.stderr)
	}
	if n := strings.Count(p.stdout.String(), "haproxy_info,"); n != 3 {
		t.Errorf("%d gathers, want 3", n)
	}
	if !strings.Contains(p.stderr.String(), "I! received SIGTERM: shutting down") {
		t.Errorf("stderr:\n%s", p.stderr)
	}
}

func TestSignalRoutesInExecdOutput(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	conf := signalConf(t, dir, "", testbed.ClosedAddr(t), spool)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1} {
		t.Run(shim.SignalName(sig), func(t *testing.T) {
			p := startInProcess(t, "-config", conf)
			const n = 1000 // one batch: delivered (and failed) at once
			if _, err := io.WriteString(p.stdin, metricLines(n)); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, 10*time.Second, "a failed delivery", func() bool { return outputFailed.MatchString(p.stderr.String()) })
			// The first stops the run, the others come while it stops.
			p.sigs <- sig
			p.sigs <- syscall.SIGTERM
			p.sigs <- syscall.SIGINT
			if code := p.wait(t); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			stderr := p.stderr.String()
			for _, want := range []string{
				"W! received SIGTERM while shutting down: ignored",
				"W! received SIGINT while shutting down: ignored",
			} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			checkSpooled(t, stderr, spool, n)
			// The next run starts with an empty spool.
			for _, f := range spooledFiles(t, spool) {
				os.Remove(f)
			}
		})
	}
}

func spooledFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := testbed.SpoolFiles(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return files
}

// childOf returns the pid of the process called name whose parent is ppid.
func childOf(ppid int, name string) (int, bool) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, parent, ok := procStat(pid)
		if ok && parent == ppid && comm == name {
			return pid, true
		}
	}
	return 0, false
}

// procStat reads a process's command name and parent pid from /proc.
func procStat(pid int) (comm string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if lp < 0 || rp < lp {
		return "", 0, false
	}
	f := strings.Fields(s[rp+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return s[lp+1 : rp], ppid, err == nil
}

// running reports whether pid is alive: not gone, not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func TestTelegrafKilledExecdOutputSpools(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	tg := testbed.Telegraf(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	outConf := signalConf(t, dir, "", testbed.ClosedAddr(t), spool)
	conf := writeFile(t, dir, "telegraf.conf", fmt.Sprintf(`
[agent]
  interval = "1s"
  flush_interval = "1s"
  hostname = "tk"
[[inputs.haproxy]]
  servers = [%q]
[[outputs.execd]]
  command = %s
  data_format = "influx"
`, h.AdminSocket, tomlList([]string{bin, "-config", outConf})))
	logPath := filepath.Join(dir, "telegraf.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	readLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	cmd := exec.Command(tg, "--config", conf)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Telegraf and hap-monitor in a process group of their own: nothing
	// sent to the test's group reaches them, and the kill below is
	// Telegraf's alone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var child int
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if child != 0 && running(child) {
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("telegraf log:\n%s", readLog())
		}
	})
	failed := regexp.MustCompile(`(?m)\[outputs\.execd\] .*E! \[outputs\.graphite_statsd\] `)
	waitUntil(t, 60*time.Second, "hap-monitor to report a failed delivery through Telegraf", func() bool { return failed.MatchString(readLog()) })
	var ok bool
	if child, ok = childOf(cmd.Process.Pid, "hap-monitor"); !ok {
		t.Fatal("no hap-monitor child of Telegraf in /proc")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	killed := time.Now()
	// Its stdin ends and its stderr has no reader: it must still spool.
	waitUntil(t, 15*time.Second, "hap-monitor to exit after Telegraf's death", func() bool { return !running(child) })
	t.Logf("hap-monitor exited %s after Telegraf was killed", time.Since(killed).Round(time.Millisecond))
	lines := spooled(t, spool)
	if len(lines) == 0 {
		t.Fatalf("nothing spooled in %s", spool)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "haproxy") {
			t.Fatalf("spooled %q, not a metric Telegraf gathered", l)
		}
	}
	t.Logf("%d metrics spooled", len(lines))
}
