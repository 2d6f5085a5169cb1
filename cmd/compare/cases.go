package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/hap-monitor/hap-monitor/plugins/common/testbed"
)

type binaries struct {
	HapMonitor, Telegraf string
	// Baseline is an earlier hap-monitor build to compare -once with.
	Baseline string
}

func buildBinaries(ctx context.Context, withTelegraf bool) (binaries, error) {
	var b binaries
	var err error
	if b.HapMonitor, err = testbed.HapMonitorBinary(ctx); err != nil {
		return b, err
	}
	if withTelegraf {
		if b.Telegraf, err = testbed.TelegrafBinary(ctx); err != nil {
			return b, err
		}
	}
	return b, nil
}

// benchCase is one way of getting the statistics of one HAProxy out.
type benchCase struct {
	Name string
	// Kind groups a hap-monitor case with the Telegraf case it compares to.
	Kind string
	Run  func(ctx context.Context) sample
}

type sizeResult struct {
	Size    size
	Rows    int
	Cases   []benchCase
	Samples map[string][]sample
	Execd   *execdResult
	// Idle is HAProxy's own CPU per second of wall time while nobody
	// asks it anything (its health checks): subtracted from every
	// HAProxy CPU figure, so that what is left is the cost of the dump.
	Idle float64
}

func measureSize(ctx context.Context, bins binaries, sz size, runs, execdSeconds int) (*sizeResult, error) {
	h, err := testbed.StartHAProxy(ctx, testbed.HAProxyOptions{Backends: sz.Backends, ServersPerBackend: sz.Servers, Checks: true})
	if err != nil {
		return nil, err
	}
	defer h.Close()
	sink, err := startSink()
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	dir, err := os.MkdirTemp("", "hm-compare")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	cases, err := makeCases(dir, bins, h, sink)
	if err != nil {
		return nil, err
	}
	res := &sizeResult{Size: sz, Cases: cases, Samples: map[string][]sample{}}
	if res.Idle, err = idleCPU(ctx, h.PID, 3*time.Second); err != nil {
		return nil, err
	}
	// Interleave the cases run by run, so that a slow moment of the
	// machine hurts every case alike.
	for i := 0; i < runs; i++ {
		for _, c := range cases {
			before, _ := processCPU(h.PID)
			s := c.Run(ctx)
			after, _ := processCPU(h.PID)
			s.HAProxyCPU = netOfIdle(after-before, s.Wall, res.Idle)
			if s.Err != nil {
				return nil, fmt.Errorf("%s: %w", c.Name, s.Err)
			}
			res.Samples[c.Name] = append(res.Samples[c.Name], s)
		}
	}
	if floor := res.Samples["floor"]; len(floor) > 0 {
		res.Rows = int(floor[0].Lines) - 2 // header and closing empty line
	}
	if execdSeconds > 0 {
		perGather := int64(median(res.Samples["hap-monitor -test"], func(s sample) float64 { return float64(s.Lines) }))
		res.Execd, err = measureExecd(ctx, bins.HapMonitor, filepath.Join(dir, "input.toml"), h.PID, res.Idle, perGather, time.Duration(execdSeconds)*time.Second)
		if err != nil {
			return nil, fmt.Errorf("execd input: %w", err)
		}
	}
	return res, nil
}

func makeCases(dir string, bins binaries, h *testbed.HAProxy, sink *lineSink) ([]benchCase, error) {
	files := map[string]string{
		"input.toml": fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n", h.AdminSocket),
		"pipeline.toml": fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n\n"+
			"[[outputs.graphite_statsd]]\n  servers = [%q]\n  prefix = \"bench\"\n", h.AdminSocket, sink.Addr()),
		"telegraf-test.conf": fmt.Sprintf("[agent]\n  omit_hostname = false\n\n[[inputs.haproxy]]\n  servers = [%q]\n", h.AdminSocket),
		"telegraf-once.conf": fmt.Sprintf("[agent]\n  interval = \"60s\"\n  flush_interval = \"60s\"\n"+
			"  metric_batch_size = 1000\n  metric_buffer_limit = 2000000\n\n"+
			"[[inputs.haproxy]]\n  servers = [%q]\n\n"+
			"[[outputs.graphite]]\n  servers = [%q]\n  prefix = \"bench\"\n", h.AdminSocket, sink.Addr()),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			return nil, err
		}
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	delivered := func(s sample) sample {
		n, err := sink.Take(10 * time.Second)
		s.Lines = n
		if s.Err == nil {
			s.Err = err
		}
		return s
	}
	cases := []benchCase{
		{Name: "floor", Kind: "floor", Run: func(ctx context.Context) sample {
			return readToEOF(ctx, "unix", h.AdminSocket)
		}},
		{Name: "hap-monitor -test", Kind: "test", Run: func(ctx context.Context) sample {
			return runCommand(ctx, true, bins.HapMonitor, "-config", path("input.toml"), "-test")
		}},
		{Name: "hap-monitor -once, every field", Kind: "once", Run: func(ctx context.Context) sample {
			return delivered(runCommand(ctx, false, bins.HapMonitor, "-config", path("pipeline.toml"), "-once"))
		}},
		{Name: "hap-monitor, original's command line", Kind: "original", Run: func(ctx context.Context) sample {
			return delivered(runCommand(ctx, false, bins.HapMonitor,
				"--backend", sink.Addr()+"::bench", "--type", "G", "--protocol", "tcp", "--sockets", h.AdminSocket))
		}},
	}
	if bins.Baseline != "" {
		cases = append(cases, benchCase{Name: "baseline -once, every field", Kind: "baseline", Run: func(ctx context.Context) sample {
			return delivered(runCommand(ctx, false, bins.Baseline, "-config", path("pipeline.toml"), "-once"))
		}})
	}
	if bins.Telegraf != "" {
		cases = append(cases,
			benchCase{Name: "telegraf --test", Kind: "test", Run: func(ctx context.Context) sample {
				return runCommand(ctx, true, bins.Telegraf, "--config", path("telegraf-test.conf"), "--test")
			}},
			benchCase{Name: "telegraf --once", Kind: "once", Run: func(ctx context.Context) sample {
				return delivered(runCommand(ctx, false, bins.Telegraf, "--config", path("telegraf-once.conf"), "--once"))
			}},
		)
	}
	return cases, nil
}

// execdResult is the steady cost of the execd input mode at a 1 s interval.
type execdResult struct {
	Gathers          int
	CPUPerGather     time.Duration
	HAProxyPerGather time.Duration
}

// measureExecd runs hap-monitor as Telegraf's [[inputs.execd]] would with
// signal = "none": gathering every second on its own, stdin held open.
// Gathers are counted from what it printed: linesPerGather lines each.
func measureExecd(ctx context.Context, bin, cfg string, haproxyPID int, idle float64, linesPerGather int64, d time.Duration) (*execdResult, error) {
	if linesPerGather < 1 {
		return nil, fmt.Errorf("no line per gather to count gathers with")
	}
	cmd := exec.CommandContext(ctx, bin, "-config", cfg, "-poll_interval", "1s")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	lc := &lineCounter{}
	done := make(chan struct{})
	go func() { io.Copy(lc, out); close(done) }()
	hBefore, _ := processCPU(haproxyPID)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	time.Sleep(d)
	hAfter, _ := processCPU(haproxyPID)
	stdin.Close() // EOF on stdin: the execd contract says exit
	<-done
	if err := cmd.Wait(); err != nil {
		return nil, err
	}
	ru := cmd.ProcessState
	cpu := ru.UserTime() + ru.SystemTime()
	gathers := int(lc.n / linesPerGather)
	if gathers < 1 {
		return nil, fmt.Errorf("no complete gather in %s (%d lines)", d, lc.n)
	}
	haproxy := netOfIdle(hAfter-hBefore, d, idle)
	return &execdResult{Gathers: gathers, CPUPerGather: cpu / time.Duration(gathers), HAProxyPerGather: haproxy / time.Duration(gathers)}, nil
}

// idleCPU is HAProxy's CPU per second of wall time while nobody talks to
// it: the cost of its health checks and timers.
func idleCPU(ctx context.Context, pid int, d time.Duration) (float64, error) {
	before, err := processCPU(pid)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(d):
	}
	after, err := processCPU(pid)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / float64(time.Since(start)), nil
}

// netOfIdle takes HAProxy's idle cost over wall out of a CPU figure
// measured around a run; never below zero (CPU is counted in 10 ms ticks).
func netOfIdle(cpu, wall time.Duration, idle float64) time.Duration {
	net := cpu - time.Duration(idle*float64(wall))
	if net < 0 {
		return 0
	}
	return net
}

func median(ss []sample, f func(sample) float64) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	sort.Float64s(v)
	n := len(v)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func (r *sizeResult) print(w io.Writer) {
	fmt.Fprintf(w, "## %s (%d rows)\n\n", r.Size, r.Rows)
	fmt.Fprintf(w, "HAProxy's idle CPU (health checks): %.1f%% of a core, taken out of the HAProxy CPU column.\n\n", r.Idle*100)
	fmt.Fprintln(w, "| case | wall | CPU | peak RSS | lines | HAProxy CPU | wall / floor | wall vs Telegraf | RSS vs Telegraf |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	wall := func(s sample) float64 { return float64(s.Wall) }
	cpu := func(s sample) float64 { return float64(s.CPU) }
	rss := func(s sample) float64 { return float64(s.PeakRSS) }
	lines := func(s sample) float64 { return float64(s.Lines) }
	hcpu := func(s sample) float64 { return float64(s.HAProxyCPU) }
	floor := median(r.Samples["floor"], wall)
	telegraf := map[string]benchCase{}
	for _, c := range r.Cases {
		if strings.HasPrefix(c.Name, "telegraf") {
			telegraf[c.Kind] = c
		}
	}
	for _, c := range r.Cases {
		ss := r.Samples[c.Name]
		w1 := median(ss, wall)
		vsTelegraf, rssTelegraf := "", ""
		if t, ok := telegraf[c.Kind]; ok && t.Name != c.Name {
			vsTelegraf = fmt.Sprintf("%.1fx faster", median(r.Samples[t.Name], wall)/w1)
			rssTelegraf = fmt.Sprintf("%.2f", median(ss, rss)/median(r.Samples[t.Name], rss))
		}
		peak := "-"
		if c.Kind != "floor" {
			peak = fmt.Sprintf("%.1f MB", median(ss, rss)/1e6)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.0f | %s | %.2f | %s | %s |\n",
			c.Name, dur(w1), dur(median(ss, cpu)), peak, median(ss, lines), dur(median(ss, hcpu)), w1/floor, vsTelegraf, rssTelegraf)
	}
	if e := r.Execd; e != nil {
		f := r.Samples["floor"]
		fmt.Fprintf(w, "\nExecd input mode, 1 s interval, %d gathers: hap-monitor CPU %s per gather, HAProxy CPU %s per gather "+
			"(floor: reader CPU %s + HAProxy CPU %s per read).\n",
			e.Gathers, dur(float64(e.CPUPerGather)), dur(float64(e.HAProxyPerGather)), dur(median(f, cpu)), dur(median(f, hcpu)))
	}
	r.printTargets(w)
	fmt.Fprintln(w)
}

// printTargets states each of the project's speed and memory targets with
// the figures it is judged on.
func (r *sizeResult) printTargets(w io.Writer) {
	wall := func(s sample) float64 { return float64(s.Wall) }
	rss := func(s sample) float64 { return float64(s.PeakRSS) }
	cpu := func(s sample) float64 { return float64(s.CPU) }
	hcpu := func(s sample) float64 { return float64(s.HAProxyCPU) }
	m := func(name string, f func(sample) float64) (float64, bool) {
		ss, ok := r.Samples[name]
		return median(ss, f), ok && len(ss) > 0
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "missed"
	}
	floor, _ := m("floor", wall)
	fmt.Fprintln(w, "\nTargets:")
	if v, ok := m("hap-monitor -once, every field", wall); ok {
		fmt.Fprintf(w, "- -once, every field, within 2x the floor: %.2fx, %s\n", v/floor, verdict(v/floor <= 2))
	}
	if v, ok := m("hap-monitor, original's command line", wall); ok {
		fmt.Fprintf(w, "- original's field set within 1.3x the floor: %.2fx, %s\n", v/floor, verdict(v/floor <= 1.3))
	}
	if b, ok := m("baseline -once, every field", wall); ok {
		v, _ := m("hap-monitor -once, every field", wall)
		fmt.Fprintf(w, "- -once no slower than the baseline build: %s vs %s (%.2fx), %s\n", dur(v), dur(b), v/b, verdict(v <= b*1.05))
	}
	hm, ok1 := m("hap-monitor -once, every field", wall)
	tg, ok2 := m("telegraf --once", wall)
	if ok1 && ok2 {
		fmt.Fprintf(w, "- at least 20x faster than Telegraf --once: %.1fx, %s\n", tg/hm, verdict(tg/hm >= 20))
		hr, _ := m("hap-monitor -once, every field", rss)
		tr, _ := m("telegraf --once", rss)
		fmt.Fprintf(w, "- peak RSS under a third of Telegraf --once's: %.2f, %s\n", hr/tr, verdict(hr/tr < 1.0/3))
	}
	if e := r.Execd; e != nil {
		fc, _ := m("floor", cpu)
		fh, _ := m("floor", hcpu)
		fmt.Fprintf(w, "- execd input at 1 s costs less CPU per gather than the floor's read (reader + HAProxy): %s vs %s, %s\n",
			dur(float64(e.CPUPerGather)), dur(fc+fh), verdict(float64(e.CPUPerGather) < fc+fh))
	}
}

func dur(ns float64) string {
	d := time.Duration(ns)
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.0f us", float64(d)/1e3)
	}
}

func machineSummary() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				_, model, _ = strings.Cut(l, ": ")
				break
			}
		}
	}
	return fmt.Sprintf("%d cores %s, %s", runtime.NumCPU(), model, runtime.Version())
}
