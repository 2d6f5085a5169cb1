package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// Socket faults through the binary: next to a real HAProxy's socket, a
// second one misbehaves. The run reports that socket by name, exits 1, and
// the real one's metrics are all there.

// linesOf returns the line protocol lines of stdout tagged with server.
func linesOf(stdout, server string) []string {
	var out []string
	for _, line := range strings.Split(stdout, "\n") {
		if strings.Contains(line, ",server="+server+",") || strings.Contains(line, ",server="+server+" ") {
			out = append(out, line)
		}
	}
	return out
}

func TestSocketFaultsThroughTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	answer := recordedAnswer(t)
	info, stat, _ := strings.Cut(answer, "\n\n")
	dir := t.TempDir()

	// What the good socket gives alone.
	alone, stderr, code := runBinary(t, bin, "", "-config", writeFile(t, dir, "alone.conf",
		fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n", h.AdminSocket)), "-test")
	if code != 0 {
		t.Fatalf("the good socket alone: exit %d\n%s", code, stderr)
	}
	want := len(linesOf(alone, h.AdminSocket))

	// Half the rows, then a row cut in its middle.
	rows := strings.SplitAfter(stat, "\n")
	half := len(rows) / 2
	cut := info + "\n\n" + strings.Join(rows[:half], "") + rows[half][:len(rows[half])/2]

	cases := []struct {
		name    string
		socket  func(t *testing.T) string
		message string // in the E! line naming the socket
		partial int    // rows of the faulty socket still emitted
	}{
		{"stale socket file", func(t *testing.T) string { return testbed.StaleSocket(t) }, "connection refused", 0},
		{"missing socket", func(t *testing.T) string { return filepath.Join(t.TempDir(), "gone.sock") }, "no such file", 0},
		{"accepts and never answers", func(t *testing.T) string {
			return testbed.NewFakeSocket(t, func(c net.Conn, _ string) { io.Copy(io.Discard, c) }).Path //nolint:errcheck // a fake
		}, "timeout 2s", 0},
		{"one byte a second", func(t *testing.T) string {
			return testbed.NewFakeSocket(t, func(c net.Conn, _ string) {
				for i := 0; i < len(answer); i++ {
					if _, err := c.Write([]byte{answer[i]}); err != nil {
						return
					}
					time.Sleep(time.Second)
				}
			}).Path
		}, "timeout 2s", 0},
		{"answer cut mid-row", func(t *testing.T) string {
			return testbed.NewFakeSocket(t, func(c net.Conn, _ string) { io.WriteString(c, cut) }).Path //nolint:errcheck // a fake
		}, "truncated", half - 1}, // the rows before the cut, less the header
		{"not CSV", func(t *testing.T) string {
			return testbed.NewFakeSocket(t, func(c net.Conn, _ string) { io.WriteString(c, "Unknown command, try 'help'.\n\n") }).Path //nolint:errcheck // a fake
		}, "show info", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			faulty := c.socket(t)
			conf := writeFile(t, t.TempDir(), "two.conf", fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q, %q]\n  timeout = \"2s\"\n", faulty, h.AdminSocket))
			start := time.Now()
			stdout, stderr, code := runBinary(t, bin, "", "-config", conf, "-test")
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if took := time.Since(start); took > 30*time.Second {
				t.Errorf("took %s: the timeout did not bound the faulty socket", took)
			}
			naming := regexp.MustCompile(`(?m)^E! \[inputs\.haproxy\] .*` + regexp.QuoteMeta(faulty) + `.*` + regexp.QuoteMeta(c.message))
			if !naming.MatchString(stderr) {
				t.Errorf("no E! line naming %s with %q:\n%s", faulty, c.message, stderr)
			}
			if got := len(linesOf(stdout, h.AdminSocket)); got != want {
				t.Errorf("the good socket gave %d lines, %d alone", got, want)
			}
			if got := len(linesOf(stdout, faulty)); got < c.partial {
				t.Errorf("the faulty socket gave %d lines, want the %d complete rows before the fault", got, c.partial)
			}
		})
	}
}

// TestGarbageAnswerMemoryIsBounded: after a valid header, 50 MB of rows
// that are no HAProxy rows are read to the end, reported, and take no more
// than a few tens of MB of memory.
func TestGarbageAnswerMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	info, stat, _ := strings.Cut(recordedAnswer(t), "\n\n")
	header, _, _ := strings.Cut(stat, "\n")
	rows := []byte(strings.Repeat("garbage,\xff\x00,;|\n", 4096))
	faulty := testbed.NewFakeSocket(t, func(c net.Conn, _ string) {
		io.WriteString(c, info+"\n\n"+header+"\n") //nolint:errcheck // a fake
		for sent := 0; sent < 50<<20; sent += len(rows) {
			if _, err := c.Write(rows); err != nil {
				return
			}
		}
		io.WriteString(c, "\n") //nolint:errcheck // a fake
	}).Path
	conf := writeFile(t, t.TempDir(), "garbage.conf", fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n  timeout = \"30s\"\n", faulty))
	p := startProc(t, bin, "-config", conf, "-test")
	p.stdin.Close()
	// The peak resident size of the process itself (rusage's maxrss would
	// count this test's own memory, inherited across fork and exec).
	peak := 0
	for running := true; running; {
		select {
		case <-p.done:
			running = false
		case <-time.After(5 * time.Millisecond):
			if kb, err := vmHWM(p.cmd.Process.Pid); err == nil {
				peak = max(peak, kb)
			}
		}
	}
	if code := p.wait(t, time.Minute); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !regexp.MustCompile(`(?m)^E! \[inputs\.haproxy\] .*` + regexp.QuoteMeta(faulty)).MatchString(p.stderr.String()) {
		t.Errorf("no E! line naming %s:\n%.2000s", faulty, p.stderr.String())
	}
	t.Logf("50 MB of garbage rows: peak RSS %d MB; stderr: %.300s", peak/1024, p.stderr.String())
	if peak == 0 || peak > 100<<10 {
		t.Errorf("peak RSS %d kB reading 50 MB of garbage rows", peak)
	}
}

// vmHWM is a process's peak resident set size in kB.
func vmHWM(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, errors.New("no VmHWM")
}

// TestHAProxyRestartBetweenGathers: the execd input keeps running while
// HAProxy is stopped and started again on the same socket path; the gather
// in the gap reports the socket, the next one is whole.
func TestHAProxyRestartBetweenGathers(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	conf := writeFile(t, t.TempDir(), "in.conf", fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n  timeout = \"2s\"\n", h.AdminSocket))
	p := startProc(t, bin, "-config", conf, "-poll_interval_disabled")
	gathers := func() int { return strings.Count(p.stdout.String(), "haproxy_info,") }

	io.WriteString(p.stdin, "\n") //nolint:errcheck // checked by what arrives
	waitUntil(t, 30*time.Second, "the first gather", func() bool { return gathers() == 1 })

	// Stop HAProxy: the socket file stays, nobody listens.
	if err := syscall.Kill(h.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "HAProxy to stop", func() bool { return syscall.Kill(h.PID, 0) != nil })
	io.WriteString(p.stdin, "\n") //nolint:errcheck // checked by what arrives
	waitUntil(t, 30*time.Second, "an error naming the socket", func() bool {
		return strings.Contains(p.stderr.String(), "E! [inputs.haproxy] show stat on "+h.AdminSocket)
	})

	// Start it again with the same configuration and socket path.
	restart := exec.Command("haproxy", "-f", filepath.Join(h.Dir, "haproxy.cfg"))
	restart.Dir = h.Dir
	if out, err := restart.CombinedOutput(); err != nil {
		t.Fatalf("restarting HAProxy: %v\n%s", err, out)
	}
	waitUntil(t, 30*time.Second, "the new HAProxy's pid file", func() bool {
		b, err := os.ReadFile(filepath.Join(h.Dir, "haproxy.pid"))
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid == 0 || pid == h.PID {
			return false
		}
		h.PID = pid // so the test bed stops this one
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.WaitStatus(ctx, testbed.ScenarioBackend, "web-1", "UP"); err != nil {
		t.Fatal(err)
	}
	io.WriteString(p.stdin, "\n") //nolint:errcheck // checked by what arrives
	waitUntil(t, 30*time.Second, "a gather after the restart", func() bool { return gathers() == 2 })
	if !strings.Contains(p.stdout.String(), "sv=web-1,type=server") {
		t.Error("no web-1 row after the restart")
	}
	p.stdin.Close()
	if code := p.wait(t, 30*time.Second); code != 0 && code != 1 {
		t.Errorf("exit %d after stdin closed", code)
	}
	noPanic(t, p.stderr.String())
}

// TestUnknownCommandThroughTheBinary: a socket whose HAProxy lacks "show
// table" answers it with its usage text (as 2.2.9 prints it); the run
// keeps its other answers, exits 0, and -debug says once that the command
// is not sent again, which three gathers of one process check.
func TestUnknownCommandThroughTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	usage, err := os.ReadFile(filepath.Join("..", "..", "plugins", "inputs", "haproxy", "testdata", "haproxy-2.2.9-usage.txt"))
	if err != nil {
		t.Fatal(err)
	}
	answer := recordedAnswer(t) // ends with the empty answer of show table
	noTable := answer[:len(answer)-1] + string(usage)
	fake := testbed.NewFakeSocket(t, func(c net.Conn, cmd string) {
		if strings.HasSuffix(cmd, ";show table\n") {
			io.WriteString(c, noTable) //nolint:errcheck // a fake
			return
		}
		io.WriteString(c, answer[:len(answer)-1]) //nolint:errcheck // a fake
	})
	conf := writeFile(t, t.TempDir(), "in.conf", fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n  optional_measurements = [\"haproxy_table\"]\n", fake.Path))
	stdout, stderr, code := runBinary(t, bin, "", "-config", conf, "-once")
	if code != 0 || strings.Contains(stderr, "E! ") || strings.Count(stdout, "haproxy,") != 12 || !strings.Contains(stdout, "haproxy_info,") {
		t.Errorf("-once: exit %d, %d haproxy lines, want 0 and the 12 rows; stderr:\n%s", code, strings.Count(stdout, "haproxy,"), stderr)
	}
	// Three gathers of one process, one stdin line each, each read out
	// before the next is asked for (lines that come together make one).
	before := len(fake.Commands())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-config", conf, "-debug", "-poll_interval_disabled")
	var errBuf testbed.SyncBuffer
	cmd.Stderr = &errBuf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	lines.Buffer(nil, 1<<20)
	infos := 0
	for range 3 {
		if _, err := io.WriteString(stdin, "\n"); err != nil {
			t.Fatal(err)
		}
		for lines.Scan() && !strings.HasPrefix(lines.Text(), "haproxy_info,") {
		}
		infos++
	}
	stdin.Close()
	go io.Copy(io.Discard, out) //nolint:errcheck // the rest
	err = cmd.Wait()
	stderr = errBuf.String()
	say := "D! [inputs.haproxy] " + fake.Path + ": HAProxy 2.6.12-1+deb12u4 (pid 8058) does not have show table (it answered with its usage text; 1.5 and later have it)"
	if err != nil || infos != 3 || strings.Count(stderr, say) != 1 || strings.Contains(stderr, "E! ") {
		t.Errorf("three gathers: %v, %d haproxy_info lines, want exit 0, 3 and the debug line once; stderr:\n%s", err, infos, stderr)
	}
	cmds := fake.Commands()[before:]
	if want := []string{"show info;show stat;show table\n", "show info;show stat\n", "show info;show stat\n"}; fmt.Sprint(cmds) != fmt.Sprint(want) {
		t.Errorf("commands %q, want %q", cmds, want)
	}
}
