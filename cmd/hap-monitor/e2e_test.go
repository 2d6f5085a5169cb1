package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
)

// End-to-end tests: the real hap-monitor binary, a real Telegraf v1.39.3,
// HAProxy, carbon-cache and statsd, all started by the test bed.

func hapMonitor(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin, err := testbed.HapMonitorBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runBinary runs bin with args and stdin, within a deadline, and returns
// its stdout, stderr and exit status.
func runBinary(t *testing.T, bin string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	case err != nil:
		t.Fatalf("running %s %q: %v", bin, args, err)
	}
	return stdout.String(), stderr.String(), 0
}

func shortHost(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return shim.ShortHostname(h)
}

// startTelegraf runs Telegraf with the config text until the test ends and
// returns a function reading what it logged so far.
func startTelegraf(t *testing.T, conf string) func() string {
	t.Helper()
	dir := t.TempDir()
	path := writeFile(t, dir, "telegraf.conf", conf)
	logPath := filepath.Join(dir, "telegraf.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testbed.Telegraf(t), "--config", path)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("telegraf log:\n%s", b)
		}
	})
	return func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
}

// waitUntil polls cond every 100ms until it holds or the deadline passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestTelegrafExecdInput(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	for _, tc := range []struct {
		signal string
		args   []string
	}{
		{"STDIN", []string{"-poll_interval_disabled"}},
		{"none", []string{"-poll_interval", "1s"}},
		{"SIGHUP", []string{"-poll_interval_disabled"}},
	} {
		t.Run(tc.signal, func(t *testing.T) {
			dir := t.TempDir()
			missing := filepath.Join(dir, "missing.sock")
			conf := writeFile(t, dir, "hap-monitor.conf", fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q, %q]\n  timeout = \"2s\"\n", h.AdminSocket, missing))
			out := filepath.Join(dir, "metrics.out")
			command := append([]string{bin, "-config", conf}, tc.args...)
			logs := startTelegraf(t, fmt.Sprintf(`
[agent]
  interval = "1s"
  flush_interval = "1s"
  hostname = "tg-host"
[[inputs.execd]]
  command = %s
  signal = %q
  data_format = "influx"
[[outputs.file]]
  files = [%q]
  data_format = "influx"
`, tomlList(command), tc.signal, out))
			read := func() string { b, _ := os.ReadFile(out); return string(b) }
			webUp := regexp.MustCompile(`(?m)^haproxy,.*host=tg-host,.*proxy=app\.v1,.*sv=web-1,.* .*status\.UP=1i`)
			info := regexp.MustCompile(`(?m)^haproxy_info,.*host=tg-host.* .*Idle_pct=`)
			waitUntil(t, 60*time.Second, "haproxy and haproxy_info metrics in Telegraf's file output", func() bool {
				s := read()
				return webUp.MatchString(s) && info.MatchString(s)
			})
			// Our E! line is filed by Telegraf at error level, under the
			// execd plugin, with our plugin's name: not as raw stderr.
			errLine := regexp.MustCompile(`(?m)^\S+ E! \[inputs\.execd\] \[inputs\.haproxy\] .*` + regexp.QuoteMeta(missing))
			waitUntil(t, 30*time.Second, "the missing socket's error in Telegraf's log", func() bool { return errLine.MatchString(logs()) })
			if strings.Contains(logs(), "stderr: ") {
				t.Errorf("Telegraf logged unprefixed stderr lines:\n%s", logs())
			}
			if strings.Contains(logs(), "Restarting in") {
				t.Errorf("hap-monitor exited under Telegraf:\n%s", logs())
			}
			if strings.Contains(read(), missing) {
				t.Error("metrics from the missing socket")
			}
		})
	}
}

func tomlList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func TestTelegrafExecdOutputToCarbon(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	carbon := testbed.NewCarbon(t)
	dir := t.TempDir()
	inConf := writeFile(t, dir, "in.conf", fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n", h.AdminSocket))
	outConf := writeFile(t, dir, "out.conf", fmt.Sprintf("[[outputs.graphite_statsd]]\n  servers = [%q]\n  format = \"graphite\"\n  transport = \"tcp\"\n  prefix = \"tg\"\n", carbon.TCPAddr))
	startTelegraf(t, fmt.Sprintf(`
[agent]
  interval = "1s"
  flush_interval = "1s"
  hostname = "tghost"
[[inputs.execd]]
  command = %s
  signal = "STDIN"
  data_format = "influx"
[[outputs.execd]]
  command = %s
  data_format = "influx"
`, tomlList([]string{bin, "-config", inConf, "-poll_interval_disabled"}), tomlList([]string{bin, "-config", outConf})))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for path, want := range map[string]float64{
		"tg.tghost.1.app_v1.web-1.status.UP":    1,
		"tg.tghost.1.app_v1.web-2.status.DOWN":  1,
		"tg.tghost.1.app_v1.web:3.status.MAINT": 1,
	} {
		if _, err := carbon.WaitPoints(ctx, path, func(p testbed.Point) bool { return p.Value == want }); err != nil {
			t.Fatalf("%s = %v never reached carbon: %v; %s", path, want, err, somePaths(carbon))
		}
	}
}

// originalArgs is the original's crontab line with this test's backend and sockets.
func originalArgs(backend, kind string, sockets ...string) []string {
	return append([]string{"--backend", backend + "::my.system.stats.haproxy", "--type", kind, "--sockets"}, sockets...)
}

func TestOriginalCrontabLine(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h1 := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	h2 := testbed.NewHAProxy(t, testbed.HAProxyOptions{Backends: 1, ServersPerBackend: 2})
	carbon := testbed.NewCarbon(t)
	base := "my.system.stats.haproxy." + shortHost(t) + ".1."
	// Both sockets' metrics, under the original's paths and names.
	want := map[string]float64{
		"app_v1.web-1.status.UP":           1,
		"app_v1.web-1.status.DOWN":         0,
		"app_v1.web-2.status.DOWN":         1,
		"app_v1.web:3.status.MAINT":        1,
		"app_v1.web-1.scur":                0,
		"www_example-fe.FRONTEND.hrsp_5xx": 0,
		"be_0001.srv_02.qcur":              0,
	}
	check := func(t *testing.T, c *testbed.Carbon, prefix string) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for path, v := range want {
			if prefix != "" {
				// statsd reads ':' as its name/value separator: a server
				// named "web:3" is "web_3" on the statsd wire.
				path = strings.ReplaceAll(path, ":", "_")
			}
			if _, err := c.WaitPoints(ctx, prefix+base+path, func(p testbed.Point) bool { return p.Value == v }); err != nil {
				t.Fatalf("%s = %v: %v; %s", prefix+base+path, v, err, somePaths(c))
			}
		}
		if _, err := c.WaitPoints(ctx, prefix+base+"Idle_pct", nil); err != nil {
			t.Errorf("Idle_pct: %v", err)
		}
		paths, err := c.Paths()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			if strings.HasSuffix(p, ".stot") || strings.Contains(p, "http_response") {
				t.Errorf("path %s is not in the original's field set", p)
			}
		}
	}

	t.Run("graphite over UDP", func(t *testing.T) {
		_, stderr, code := runBinary(t, bin, "", originalArgs(carbon.UDPAddr, "G", h1.AdminSocket, h2.AdminSocket)...)
		if code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, stderr)
		}
		check(t, carbon, "")
	})
	t.Run("statsd", func(t *testing.T) {
		statsCarbon := testbed.NewCarbon(t)
		statsd := testbed.NewStatsd(t, statsCarbon.TCPAddr)
		_, stderr, code := runBinary(t, bin, "", originalArgs(statsd.Addr, "S", h1.AdminSocket, h2.AdminSocket)...)
		if code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, stderr)
		}
		check(t, statsCarbon, "stats.gauges.")
	})
	t.Run("one socket missing", func(t *testing.T) {
		c := testbed.NewCarbon(t)
		missing := filepath.Join(t.TempDir(), "gone.sock")
		_, stderr, code := runBinary(t, bin, "", originalArgs(c.UDPAddr, "G", missing, h1.AdminSocket)...)
		if code != 1 {
			t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr)
		}
		if !regexp.MustCompile(`(?m)^E! \[inputs\.haproxy\] .*` + regexp.QuoteMeta(missing)).MatchString(stderr) {
			t.Errorf("no E! line naming %s:\n%s", missing, stderr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if _, err := c.WaitPoints(ctx, base+"app_v1.web-1.status.UP", func(p testbed.Point) bool { return p.Value == 1 }); err != nil {
			t.Errorf("the good socket's metrics: %v", err)
		}
	})
}

func TestCronSpoolsWhileGraphiteIsDown(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	if err := os.Mkdir(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := func(server string) string {
		return writeFile(t, dir, "cron.conf", fmt.Sprintf(`
[agent]
  hostname = "cronhost"
[[inputs.haproxy]]
  servers = [%q]
  include_fields = ["scur", "status.*"]
[[outputs.graphite_statsd]]
  servers = [%q]
  format = "graphite"
  transport = "tcp"
  prefix = "cron"
  timeout = "2s"
  spool_dir = %q
`, h.AdminSocket, server, spool))
	}
	down := testbed.ClosedAddr(t)
	_, stderr, code := runBinary(t, bin, "", "-config", conf(down), "-once")
	if code != 1 {
		t.Fatalf("run with graphite down: exit %d, want 1; stderr:\n%s", code, stderr)
	}
	t.Logf("run 1 stderr:\n%s", stderr)
	// Timestamps are rounded to the second ([agent] precision, as in
	// Telegraf): the second run must gather at least half a second into
	// the second after the first run's.
	second := time.Unix(time.Now().Unix()+1, 5e8)
	waitUntil(t, 5*time.Second, "the next second", func() bool { return time.Now().After(second) })

	// The spool belongs to the configured servers: graphite comes back at
	// the same address, a forwarder to a real carbon.
	carbon := testbed.NewCarbon(t)
	testbed.NewForwarder(t, down, carbon.TCPAddr)
	_, stderr, code = runBinary(t, bin, "", "-config", conf(down), "-once")
	if code != 0 {
		t.Fatalf("run with graphite up: exit %d, want 0; stderr:\n%s", code, stderr)
	}
	t.Logf("run 2 stderr:\n%s", stderr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	path := "cron.cronhost.1.app_v1.web-1.status.UP"
	var points []testbed.Point
	waitUntil(t, 60*time.Second, "both runs' points of "+path, func() bool {
		points, _ = carbon.WaitPoints(ctx, path, nil)
		return len(points) >= 2
	})
	if len(points) != 2 || points[0].Time == points[1].Time {
		t.Errorf("points %v: want one per run", points)
	}
}

func TestExecdOutputHundredThousandLinesToCarbon(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	carbon := testbed.NewCarbon(t)
	dir := t.TempDir()
	conf := writeFile(t, dir, "out.conf", fmt.Sprintf("[[outputs.graphite_statsd]]\n  servers = [%q]\n  format = \"graphite\"\n  transport = \"tcp\"\n  prefix = \"big\"\n", carbon.TCPAddr))

	// 100 paths x 1000 distinct seconds within carbon's 1h retention.
	const lines, paths = 100000, 100
	bad := map[int]bool{7: true, 33333: true, 50000: true, 50001: true, 99998: true}
	start := time.Now().Unix() - 1200
	var in strings.Builder
	for n := 1; n <= lines; n++ {
		p, sec := n%paths, start+int64(n/paths)
		switch {
		case !bad[n]:
			fmt.Fprintf(&in, "e2e,host=h,k=p%03d v=%d %d\n", p, n, sec*1e9)
		case n%2 == 0:
			fmt.Fprintf(&in, "e2e,host=h,k=p%03d v= %d\n", p, sec*1e9)
		default:
			fmt.Fprintf(&in, "e2e,host=h,k=p%03d v=\xff\xfe %d\n", p, sec*1e9)
		}
	}
	_, stderr, code := runBinary(t, bin, in.String(), "-config", conf)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	for n := range bad {
		if !strings.Contains(stderr, fmt.Sprintf("W! line %d: ", n)) {
			t.Errorf("bad line %d not reported", n)
		}
	}
	if c := strings.Count(stderr, "W! line "); c != len(bad) {
		t.Errorf("%d lines reported, want %d:\n%s", c, len(bad), stderr)
	}
	want := lines - len(bad)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	got := 0
	_, err := carbon.WaitAll(ctx, func(all map[string][]testbed.Point) bool {
		got = 0
		for path, points := range all {
			if strings.HasPrefix(path, "big.h.") {
				got += len(points)
			}
		}
		return got >= want
	})
	if err != nil || got != want {
		t.Fatalf("carbon holds %d points, want %d: %v", got, want, err)
	}
}

// somePaths describes what carbon holds, briefly, for failure messages.
func somePaths(c *testbed.Carbon) string {
	paths, err := c.Paths()
	if err != nil {
		return err.Error()
	}
	if len(paths) > 20 {
		return fmt.Sprintf("carbon has %d paths, first %q", len(paths), paths[:20])
	}
	return fmt.Sprintf("carbon has %q", paths)
}

func TestExecdInputByHand(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	dir := t.TempDir()
	conf := writeFile(t, dir, "in.conf", fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n", h.AdminSocket))

	t.Run("echo | hap-monitor gathers once and exits 0", func(t *testing.T) {
		stdout, stderr, code := runBinary(t, bin, "\n", "-config", conf, "-poll_interval_disabled")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if n := strings.Count(stdout, "haproxy_info,"); n != 1 {
			t.Errorf("%d haproxy_info lines, want 1 (one gather):\n%s", n, stdout)
		}
		if !regexp.MustCompile(`(?m)^haproxy,.*sv=web-1,.* .*status\.UP=1i`).MatchString(stdout) {
			t.Errorf("no web-1 UP line:\n%s", stdout)
		}
	})

	t.Run("SIGTERM ends a waiting input with 0", func(t *testing.T) {
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
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(stdin, "\n"); err != nil {
			t.Fatal(err)
		}
		// Once the first gather is out, the process is waiting: stop it.
		buf := make([]byte, 1)
		if _, err := io.ReadFull(stdout, buf); err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0", err)
		}
	})
}
