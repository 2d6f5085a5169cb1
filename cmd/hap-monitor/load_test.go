package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// soakDuration is how long TestPipelineSoak runs: a minute, or
// HAP_MONITOR_SOAK (a Go duration, e.g. 10m).
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("HAP_MONITOR_SOAK")
	if v == "" {
		return time.Minute
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 10*time.Second {
		t.Fatalf("HAP_MONITOR_SOAK=%q: want a Go duration of at least 10s", v)
	}
	return d
}

// procSample is one reading of a process's resources.
type procSample struct {
	rssKB, threads, fds int
}

func sampleProc(pid int) (procSample, error) {
	var s procSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			s.rssKB, _ = strconv.Atoi(f[0])
		case "Threads":
			s.threads, _ = strconv.Atoi(f[0])
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(fds)
	return s, nil
}

// cpuTicks is the process's user + system time in clock ticks (USER_HZ,
// 100 a second on Linux).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime, nil
}

func median(v []int) int {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestPipelineSoak runs the pipeline at a 1 s interval against a real
// 1000x10 HAProxy, delivering every field to a Graphite sink, and checks
// that every interval arrives whole and that memory, threads and open
// descriptors stay flat.
func TestPipelineSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	d := soakDuration(t)
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{Backends: 1000, ServersPerBackend: 10, Checks: true})
	sink := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{Keep: testbed.KeepCounts, Marker: ".be_0500.srv_05.status.UP"})
	dir := t.TempDir()
	conf := writeFile(t, dir, "soak.conf", fmt.Sprintf(`
[[inputs.haproxy]]
  servers = [%q]
  timeout = "5s"

[[outputs.graphite_statsd]]
  servers = [%q]
  prefix = "soak"
`, h.AdminSocket, sink.Addr))

	stderrPath := filepath.Join(dir, "stderr")
	stderr, err := os.Create(stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd := exec.Command(bin, "-config", conf, "-poll_interval", "1s")
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done //nolint:errcheck // the exit status of a kill
		}
	}()

	var samples []procSample
	start := time.Now()
	for time.Since(start) < d {
		select {
		case err := <-done:
			b, _ := os.ReadFile(stderrPath)
			t.Fatalf("hap-monitor ended early: %v\n%s", err, b)
		case <-time.After(time.Second):
		}
		s, err := sampleProc(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, s)
	}
	ticks, err := cpuTicks(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			b, _ := os.ReadFile(stderrPath)
			t.Fatalf("after SIGTERM: %v, want exit 0\n%s", err, b)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("hap-monitor did not exit within 30 s of SIGTERM")
	}
	// Let the sink read what was sent before the exit.
	time.Sleep(500 * time.Millisecond)
	drain(t, sink)
	counts := sink.Counts()

	logs, _ := os.ReadFile(stderrPath)
	for _, line := range strings.Split(string(logs), "\n") {
		if strings.HasPrefix(line, "E! ") {
			t.Errorf("error logged: %s", line)
		}
	}
	checkIntervals(t, counts, d)
	early, late := checkFlat(t, samples)

	gathers := 0
	for _, n := range counts.Marks {
		gathers += n
	}
	rss := make([]int, len(samples))
	for i, s := range samples {
		rss[i] = s.rssKB
	}
	last := samples[len(samples)-1]
	t.Logf("soak: %s, %d gathers of 1000x10 (12,004 rows, every field), CPU %.1f ms per gather; "+
		"RSS min %d / median %d / max %d MB, median %d MB in the second quarter and %d MB in the last; threads %d; open fds %d",
		d, gathers, float64(ticks)*10/float64(max(gathers, 1)),
		slices.Min(rss)/1024, median(rss)/1024, slices.Max(rss)/1024, early/1024, late/1024, last.threads, last.fds)
}

// checkIntervals asserts every interval arrived whole: as many gathers as
// seconds run (less a little for start and stop), each with about the
// same number of lines.
func checkIntervals(t *testing.T, sink testbed.SinkCounts, d time.Duration) {
	t.Helper()
	if sink.Malformed > 0 {
		t.Errorf("%d malformed lines, e.g. %q", sink.Malformed, sink.MalformedExample)
	}
	var stamps []int64
	gathers := 0
	for ts, n := range sink.Marks {
		stamps = append(stamps, ts)
		gathers += n
	}
	slices.Sort(stamps)
	// The soak is of memory and wholeness over many gathers, not of pace
	// (BENCHMARKS.md measures that): a 1000x10 gather and its delivery
	// take 0.3 s on an idle machine and can take 2 s or more with another
	// process on a CPU, and gathers that come due during one are made
	// after it. A quarter of the intervals is many gathers still.
	if want := int(d/time.Second) / 4; gathers < want {
		t.Errorf("%d gathers delivered in %s at a 1 s interval, want at least %d", gathers, d, want)
	}
	if len(stamps) == 0 {
		t.Fatal("nothing delivered")
	}
	// A gather of 1000x10 with every field is about 834,000 lines; two
	// gathers may share a second. Each second's lines must be that many
	// per gather in it (the median gather's), give or take the odd field
	// a row has or lacks; in the first seconds fewer, as HAProxy fills a
	// server's check columns at its first check, spread over its first
	// 2 s, whenever the first gather comes.
	var perGather []int
	for _, ts := range stamps {
		if g := sink.Marks[ts]; g > 0 {
			perGather = append(perGather, sink.Lines[ts]/g)
		}
	}
	per := median(perGather)
	if per < 800_000 {
		t.Errorf("%d lines per gather, want about 834,000", per)
	}
	for _, ts := range stamps {
		n, g := sink.Lines[ts], sink.Marks[ts]
		lo, hi := g*per*99/100, g*per*101/100
		if ts < stamps[0]+3 {
			lo = 0 // the checks still filling in
		}
		if n < lo || n > hi {
			t.Errorf("second %d: %d lines for %d gathers, want %d each (1%%)", ts, n, g, per)
		}
	}
	for ts := range sink.Lines {
		if sink.Marks[ts] == 0 {
			t.Errorf("second %d: %d lines without the marker series: a gather arrived in part", ts, sink.Lines[ts])
		}
	}
}

// checkFlat compares the second quarter of the run with the last: a leak
// shows as growth; noise does not reach these margins.
// It returns the two quarters' median RSS in kB.
func checkFlat(t *testing.T, samples []procSample) (early, late int) {
	t.Helper()
	q := len(samples) / 4
	if q < 2 {
		t.Fatalf("%d samples: too few to compare", len(samples))
	}
	pick := func(from []procSample, f func(procSample) int) int {
		v := make([]int, len(from))
		for i, s := range from {
			v[i] = f(s)
		}
		return median(v)
	}
	second, last := samples[q:2*q], samples[len(samples)-q:]
	rss := func(s procSample) int { return s.rssKB }
	early, late = pick(second, rss), pick(last, rss)
	if late > early*12/10+10*1024 {
		t.Errorf("RSS grew from %d to %d MB", early/1024, late/1024)
	}
	for name, f := range map[string]func(procSample) int{
		"threads":          func(s procSample) int { return s.threads },
		"open descriptors": func(s procSample) int { return s.fds },
	} {
		if a, b := pick(second, f), pick(last, f); b > a+2 {
			t.Errorf("%s grew from %d to %d", name, a, b)
		}
	}
	return early, late
}
