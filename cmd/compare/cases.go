package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

type binaries struct {
	HapMonitor, Telegraf string
	// Baseline is an earlier hap-monitor build to compare -once with.
	Baseline string
	// HAProxy is the haproxy measured.
	HAProxy string
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
	// Idle is HAProxy's own CPU per second of wall time while nobody
	// asks it anything (its health checks): subtracted from every
	// HAProxy CPU figure, so that what is left is the cost of the dump.
	Idle float64
	// Checks tells whether the servers had health checks.
	Checks bool
	// Discovery tells that HAProxy had a peers and a resolvers section.
	Discovery bool
}

// Case names the report and the targets refer to.
const (
	caseFloor        = "floor"
	caseTest         = "hap-monitor -test"
	caseExecd        = "hap-monitor execd input, per gather"
	caseOnce         = "hap-monitor -once, every field"
	caseExclude      = "hap-monitor -once, fieldexclude"
	caseNoCertsOnce  = "hap-monitor -once, stick tables only"
	caseNoCertsExecd = "hap-monitor execd input, stick tables only, per gather"
	caseOriginal     = "hap-monitor, original's command line"
	caseBaseOnce     = "baseline -once, every field"
	caseBaseOriginal = "baseline, original's command line"
	caseBaseExecd    = "baseline execd input, per gather"
	caseTelegrafTest = "telegraf --test"
	caseTelegrafOnce = "telegraf --once"
)

func measureSize(ctx context.Context, bins binaries, sz size, opts options, checks bool) (*sizeResult, error) {
	runs, execdGathers := opts.runs, opts.execdGathers
	dir, err := os.MkdirTemp("", "hm-compare")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	extra, err := certFrontend(dir, opts.certs)
	if err != nil {
		return nil, err
	}
	global := ""
	if opts.discovery {
		sections, err := discoverySections()
		if err != nil {
			return nil, err
		}
		extra += sections
		global = "localpeer pa"
	}
	h, err := testbed.StartHAProxy(ctx, testbed.HAProxyOptions{Backends: sz.Backends, ServersPerBackend: sz.Servers, Checks: checks,
		Binary: bins.HAProxy, Extra: extra, Global: global})
	if err != nil {
		return nil, err
	}
	defer func() { _ = h.Close() }()
	sink, err := startSink()
	if err != nil {
		return nil, err
	}
	defer sink.Close()

	cases, err := makeCases(ctx, dir, bins, h, sink, execdGathers, opts)
	if err != nil {
		return nil, err
	}
	res := &sizeResult{Size: sz, Cases: cases, Samples: map[string][]sample{}, Checks: checks, Discovery: opts.discovery}
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
			span := s.Span
			if span == 0 {
				span = s.Wall
			}
			s.HAProxyCPU = netOfIdle(after-before, span, res.Idle) / time.Duration(max(s.Per, 1))
			if s.Err != nil {
				return nil, fmt.Errorf("%s: %w", c.Name, s.Err)
			}
			res.Samples[c.Name] = append(res.Samples[c.Name], s)
		}
	}
	if floor := res.Samples[caseFloor]; len(floor) > 0 {
		res.Rows = int(floor[0].Lines) - 2 // header and closing empty line
	}
	return res, nil
}

// certFrontend writes n certificates into dir/certs and returns the
// configuration of a TLS frontend serving them all ("crt <dir>" loads
// every file there); "" for none.
func certFrontend(dir string, n int) (string, error) {
	if n == 0 {
		return "", nil
	}
	pki, err := testbed.MakePKI(dir)
	if err != nil {
		return "", err
	}
	certs := filepath.Join(dir, "certs")
	if err := os.Mkdir(certs, 0o700); err != nil {
		return "", err
	}
	now := time.Now()
	for i := range n {
		name := fmt.Sprintf("site-%04d.example.org", i)
		spec := testbed.CertSpec{CommonName: name, DNSNames: []string{name, "www." + name},
			NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(time.Duration(30+i%60) * 24 * time.Hour)}
		if _, err := pki.WriteServedCert(filepath.Join(certs, name+".pem"), spec); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("frontend fe_certs\n\tbind unix@%s ssl crt %s\n", filepath.Join(dir, "tls.sock"), certs), nil
}

// discoverySections is a peers section (this HAProxy, pa, and a peer pb
// nobody runs) with a shared table, and a resolvers section whose
// nameserver does not answer, behind a server-template backend: what
// show peers and show resolvers then say is what a gather reads.
func discoverySections() (string, error) {
	var ports [3]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	return fmt.Sprintf(`peers mypeers
	peer pa 127.0.0.1:%d
	peer pb 127.0.0.1:%d
	table t1 type ip size 1k expire 10m store gpc0

resolvers dns
	nameserver ns1 127.0.0.1:%d
	hold valid 1s

backend be_dns
	server-template srv 2 app.test:8080 resolvers dns init-addr none
`, ports[0], ports[1], ports[2]), nil
}

func makeCases(ctx context.Context, dir string, bins binaries, h *testbed.HAProxy, sink *lineSink, execdGathers int, opts options) ([]benchCase, error) {
	exclude := opts.fieldExclude
	var quoted []string
	for _, g := range exclude {
		quoted = append(quoted, strconv.Quote(strings.TrimSpace(g)))
	}
	files := map[string]string{
		"exclude.toml": fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n  fieldexclude = [%s]\n\n"+
			"[[outputs.graphite_statsd]]\n  servers = [%q]\n  prefix = \"bench\"\n", h.AdminSocket, strings.Join(quoted, ", "), sink.Addr()),
		"input.toml":         fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n", h.AdminSocket),
		"input-nocerts.toml": fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n  optional_measurements = [\"haproxy_table\"]\n", h.AdminSocket),
		"pipeline-nocerts.toml": fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n  optional_measurements = [\"haproxy_table\"]\n\n"+
			"[[outputs.graphite_statsd]]\n  servers = [%q]\n  prefix = \"bench\"\n", h.AdminSocket, sink.Addr()),
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
	original := func(bin string) func(context.Context) sample {
		return func(ctx context.Context) sample {
			return delivered(runCommand(ctx, false, bin,
				"--backend", sink.Addr()+"::bench", "--type", "G", "--protocol", "tcp", "--sockets", h.AdminSocket))
		}
	}
	onceWith := func(bin, conf string) func(context.Context) sample {
		return func(ctx context.Context) sample {
			return delivered(runCommand(ctx, false, bin, "-config", path(conf), "-once"))
		}
	}
	once := func(bin string) func(context.Context) sample { return onceWith(bin, "pipeline.toml") }
	// The execd input's gathers are told apart by the lines printed:
	// -test prints as many per gather.
	var perGather int64
	if execdGathers > 0 {
		warm := runCommand(ctx, true, bins.HapMonitor, "-config", path("input.toml"), "-test")
		if warm.Err != nil {
			return nil, warm.Err
		}
		perGather = warm.Lines
	}
	execdWith := func(bin, conf string, perGather int64) func(context.Context) sample {
		return func(ctx context.Context) sample {
			return runExecdInput(ctx, bin, path(conf), execdGathers, perGather)
		}
	}
	execd := func(bin string) func(context.Context) sample { return execdWith(bin, "input.toml", perGather) }
	cases := []benchCase{
		{Name: caseFloor, Kind: "floor", Run: func(ctx context.Context) sample {
			return readToEOF(ctx, "unix", h.AdminSocket)
		}},
		{Name: caseTest, Kind: "test", Run: func(ctx context.Context) sample {
			return runCommand(ctx, true, bins.HapMonitor, "-config", path("input.toml"), "-test")
		}},
	}
	if execdGathers > 0 {
		cases = append(cases, benchCase{Name: caseExecd, Kind: "execd", Run: execd(bins.HapMonitor)})
	}
	cases = append(cases,
		benchCase{Name: caseOnce, Kind: "once", Run: once(bins.HapMonitor)},
		benchCase{Name: caseOriginal, Kind: "original", Run: original(bins.HapMonitor)},
	)
	if len(exclude) > 0 {
		cases = append(cases, benchCase{Name: caseExclude, Kind: "exclude", Run: onceWith(bins.HapMonitor, "exclude.toml")})
	}
	if opts.certs > 0 || opts.discovery {
		cases = append(cases, benchCase{Name: caseNoCertsOnce, Kind: "nocerts", Run: onceWith(bins.HapMonitor, "pipeline-nocerts.toml")})
		if execdGathers > 0 {
			warm := runCommand(ctx, true, bins.HapMonitor, "-config", path("input-nocerts.toml"), "-test")
			if warm.Err != nil {
				return nil, warm.Err
			}
			cases = append(cases, benchCase{Name: caseNoCertsExecd, Kind: "nocerts", Run: execdWith(bins.HapMonitor, "input-nocerts.toml", warm.Lines)})
		}
	}
	if bins.Baseline != "" {
		cases = append(cases, benchCase{Name: caseBaseOnce, Kind: "baseline", Run: once(bins.Baseline)},
			benchCase{Name: caseBaseOriginal, Kind: "baseline", Run: original(bins.Baseline)})
		if execdGathers > 0 {
			cases = append(cases, benchCase{Name: caseBaseExecd, Kind: "baseline", Run: execd(bins.Baseline)})
		}
	}
	if bins.Telegraf != "" {
		cases = append(cases,
			benchCase{Name: caseTelegrafTest, Kind: "test", Run: func(ctx context.Context) sample {
				return runCommand(ctx, true, bins.Telegraf, "--config", path("telegraf-test.conf"), "--test")
			}},
			benchCase{Name: caseTelegrafOnce, Kind: "once", Run: func(ctx context.Context) sample {
				return delivered(runCommand(ctx, false, bins.Telegraf, "--config", path("telegraf-once.conf"), "--once"))
			}},
		)
	}
	return cases, nil
}

// runExecdInput runs hap-monitor as Telegraf's [[inputs.execd]] runs it
// with signal = "STDIN": one gather per newline on its stdin. It sends a
// newline, waits until the gather's lines (perGather of them) are read
// from its stdout, and so on gathers times, then closes stdin (the execd
// contract says exit). The sample is per gather: wall from newline to
// last line, the process's CPU (its rusage, start-up included) and lines,
// each divided by the gathers; peak RSS is the process's.
func runExecdInput(ctx context.Context, bin, cfg string, gathers int, perGather int64) sample {
	fail := func(err error) sample { return sample{Err: fmt.Errorf("execd input: %w", err)} }
	if perGather < 1 {
		return fail(fmt.Errorf("no line per gather to count gathers with"))
	}
	cmd := exec.CommandContext(ctx, bin, "-config", cfg, "-poll_interval_disabled")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fail(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	var total atomic.Int64
	more := make(chan struct{}, 1)
	done := make(chan struct{})
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	go func() {
		defer close(done)
		buf := make([]byte, 256<<10)
		for {
			n, err := out.Read(buf)
			total.Add(int64(bytes.Count(buf[:n], []byte{'\n'})))
			select {
			case more <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	var wall time.Duration
	var runErr error
	for i := 1; i <= gathers && runErr == nil; i++ {
		t0 := time.Now()
		if _, err := io.WriteString(stdin, "\n"); err != nil {
			runErr = err
			break
		}
		want := int64(i) * perGather
		timeout := time.After(time.Minute)
		for total.Load() < want && runErr == nil {
			select {
			case <-more:
			case <-done:
				if total.Load() < want {
					runErr = fmt.Errorf("stdout ended after %d lines, want %d", total.Load(), want)
				}
			case <-timeout:
				runErr = fmt.Errorf("gather %d: %d lines after a minute, want %d", i, total.Load(), want)
			}
		}
		wall += time.Since(t0)
	}
	stdin.Close()
	<-done
	werr := cmd.Wait()
	s := sample{Per: gathers, Span: time.Since(start), Wall: wall / time.Duration(gathers), Lines: total.Load() / int64(gathers)}
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			s.CPU = (tv(ru.Utime) + tv(ru.Stime)) / time.Duration(gathers)
			s.PeakRSS = ru.Maxrss * 1024
		}
	}
	if runErr == nil {
		runErr = werr
	}
	if runErr != nil {
		s.Err = fmt.Errorf("execd input: %w: %s", runErr, lastLine(stderr.String()))
	}
	return s
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
	if r.Checks {
		fmt.Fprintf(w, "Health checks every 2 s on every server. HAProxy's idle CPU (the checks): %.1f%% of a core, taken out of the HAProxy CPU column.\n\n", r.Idle*100)
	} else {
		fmt.Fprintf(w, "No health checks (servers \"no check\", check columns empty). HAProxy's idle CPU: %.1f%% of a core, taken out of the HAProxy CPU column.\n\n", r.Idle*100)
	}
	fmt.Fprintln(w, "| case | wall | CPU | peak RSS | lines | HAProxy CPU | wall / floor | wall vs Telegraf | RSS vs Telegraf |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	floor := r.median(caseFloor, wallOf)
	telegraf := map[string]benchCase{}
	for _, c := range r.Cases {
		if strings.HasPrefix(c.Name, "telegraf") {
			telegraf[c.Kind] = c
		}
	}
	for _, c := range r.Cases {
		w1 := r.median(c.Name, wallOf)
		vsTelegraf, rssTelegraf := "", ""
		if t, ok := telegraf[c.Kind]; ok && t.Name != c.Name {
			vsTelegraf = fmt.Sprintf("%.1fx faster", r.median(t.Name, wallOf)/w1)
			rssTelegraf = fmt.Sprintf("%.2f", r.median(c.Name, rssOf)/r.median(t.Name, rssOf))
		}
		peak := "-"
		if c.Kind != "floor" {
			peak = fmt.Sprintf("%.1f MB", r.median(c.Name, rssOf)/1e6)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.0f | %s | %.2f | %s | %s |\n",
			c.Name, dur(w1), dur(r.median(c.Name, cpuOf)), peak, r.median(c.Name, linesOf), dur(r.median(c.Name, haproxyOf)), w1/floor, vsTelegraf, rssTelegraf)
	}
	if r.has(caseExecd) {
		fmt.Fprintf(w, "\nThe execd input rows are per gather (%d gathers a run, one per newline on stdin; CPU includes start-up): "+
			"wall from the newline to the gather's last line.\n", r.Samples[caseExecd][0].Per)
	}
	r.printTargets(w)
	fmt.Fprintln(w)
}

func wallOf(s sample) float64    { return float64(s.Wall) }
func cpuOf(s sample) float64     { return float64(s.CPU) }
func rssOf(s sample) float64     { return float64(s.PeakRSS) }
func linesOf(s sample) float64   { return float64(s.Lines) }
func haproxyOf(s sample) float64 { return float64(s.HAProxyCPU) }

func (r *sizeResult) has(name string) bool { return len(r.Samples[name]) > 0 }

func (r *sizeResult) median(name string, f func(sample) float64) float64 {
	return median(r.Samples[name], f)
}

// printTargets states each of the project's speed and memory targets
// that one size's figures judge.
func (r *sizeResult) printTargets(w io.Writer) {
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "missed"
	}
	floor := r.median(caseFloor, wallOf)
	dump := r.median(caseFloor, haproxyOf)
	fmt.Fprintln(w, "\nTargets:")
	if r.has(caseExecd) {
		v := r.median(caseExecd, cpuOf)
		fmt.Fprintf(w, "- execd input CPU per gather at most HAProxy's own CPU for the dump: %s vs %s (%.2fx), %s\n", dur(v), dur(dump), v/dump, verdict(v <= dump))
	}
	if r.has(caseTest) {
		v := r.median(caseTest, cpuOf)
		fmt.Fprintf(w, "- -test CPU at most HAProxy's own CPU for the dump: %s vs %s (%.2fx), %s\n", dur(v), dur(dump), v/dump, verdict(v <= dump))
	}
	if r.has(caseOnce) {
		v := r.median(caseOnce, wallOf)
		fmt.Fprintf(w, "- -once, every field, within 1.5x the floor: %.2fx, %s\n", v/floor, verdict(v/floor <= 1.5))
	}
	if r.has(caseOriginal) {
		v := r.median(caseOriginal, wallOf)
		fmt.Fprintf(w, "- original's field set within 1.2x the floor: %.2fx, %s\n", v/floor, verdict(v/floor <= 1.2))
	}
	for _, p := range [][2]string{{caseOnce, caseBaseOnce}, {caseOriginal, caseBaseOriginal}, {caseExecd, caseBaseExecd}} {
		if r.has(p[0]) && r.has(p[1]) {
			v, b := r.median(p[0], wallOf), r.median(p[1], wallOf)
			vc, bc := r.median(p[0], cpuOf), r.median(p[1], cpuOf)
			vr, br := r.median(p[0], rssOf), r.median(p[1], rssOf)
			fmt.Fprintf(w, "- %s against the baseline build: wall %s vs %s (%.2fx), CPU %s vs %s (%.2fx), peak RSS %.1f vs %.1f MB\n",
				p[0], dur(v), dur(b), v/b, dur(vc), dur(bc), vc/bc, vr/1e6, br/1e6)
		}
	}
	// The optional commands' cost: within 1.3x (-once) and 1.15x (execd)
	// for certificates, 1.05x for peers and resolvers.
	onceLimit, execdLimit, what := 1.3, 1.15, "the certificates"
	if r.Discovery {
		onceLimit, execdLimit, what = 1.05, 1.05, "peers and resolvers"
	}
	if r.has(caseOnce) && r.has(caseNoCertsOnce) {
		v, vn := r.median(caseOnce, wallOf), r.median(caseNoCertsOnce, wallOf)
		c, cn := r.median(caseOnce, cpuOf), r.median(caseNoCertsOnce, cpuOf)
		fmt.Fprintf(w, "- -once reading %s within %.2fx one without: wall %s vs %s (%.2fx), %s; CPU %s vs %s (%.2fx)\n",
			what, onceLimit, dur(v), dur(vn), v/vn, verdict(v/vn <= onceLimit), dur(c), dur(cn), c/cn)
	}
	if r.has(caseExecd) && r.has(caseNoCertsExecd) {
		c, cn := r.median(caseExecd, cpuOf), r.median(caseNoCertsExecd, cpuOf)
		fmt.Fprintf(w, "- execd input CPU per gather reading %s within %.2fx without: %s vs %s (%.2fx), %s\n",
			what, execdLimit, dur(c), dur(cn), c/cn, verdict(c/cn <= execdLimit))
	}
	if r.has(caseOnce) && r.has(caseExclude) {
		l, le := r.median(caseOnce, linesOf), r.median(caseExclude, linesOf)
		v, ve := r.median(caseOnce, wallOf), r.median(caseExclude, wallOf)
		c, ce := r.median(caseOnce, cpuOf), r.median(caseExclude, cpuOf)
		fmt.Fprintf(w, "- fieldexclude leaves out %.0f of %.0f Graphite lines (%.0f%%): wall %s vs %s (%.2fx), CPU %s vs %s (%.2fx)\n",
			l-le, l, 100*(l-le)/l, dur(ve), dur(v), ve/v, dur(ce), dur(c), ce/c)
	}
	if r.has(caseOnce) && r.has(caseTelegrafOnce) {
		hm, tg := r.median(caseOnce, wallOf), r.median(caseTelegrafOnce, wallOf)
		fmt.Fprintf(w, "- at least 30x faster than Telegraf --once: %.1fx, %s\n", tg/hm, verdict(tg/hm >= 30))
		hr, tr := r.median(caseOnce, rssOf), r.median(caseTelegrafOnce, rssOf)
		fmt.Fprintf(w, "- peak RSS under a fifth of Telegraf --once's: %.2f, %s\n", hr/tr, verdict(hr/tr < 1.0/5))
	}
}

// printScaling compares the sizes: cost per 1,000 rows (linear in rows
// when it stays the same) and peak RSS against the 1000x10 figure (flat
// with rows: at most 1.2x at 4000x10).
func printScaling(w io.Writer, all []*sizeResult) {
	if len(all) < 2 {
		return
	}
	fmt.Fprintln(w, "## Scaling")
	fmt.Fprintln(w)
	var ref *sizeResult
	for _, r := range all {
		if r.Size == (size{1000, 10}) {
			ref = r
		}
	}
	// Peak RSS is compared between sizes measured alike.
	for _, r := range all {
		if ref != nil && r.Checks != ref.Checks {
			fmt.Fprintf(w, "(%s ran %s health checks, 1000x10 %s: rows differ in their fields; -checks off measures every size alike.)\n\n",
				r.Size, map[bool]string{true: "with", false: "without"}[r.Checks], map[bool]string{true: "with", false: "without"}[ref.Checks])
			break
		}
	}
	fmt.Fprintln(w, "| size | rows | checks | floor wall | HAProxy CPU per 1k rows | -test CPU per 1k rows | execd CPU per gather per 1k rows | -once wall | -once CPU per 1k rows | -once peak RSS | execd peak RSS | telegraf --once wall | telegraf --once peak RSS |")
	fmt.Fprintln(w, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	cell := func(r *sizeResult, name string, f func(sample) float64, format func(float64) string) string {
		if !r.has(name) {
			return "-"
		}
		return format(r.median(name, f))
	}
	perK := func(r *sizeResult) func(float64) string {
		return func(v float64) string { return dur(v / float64(r.Rows) * 1000) }
	}
	mb := func(v float64) string { return fmt.Sprintf("%.1f MB", v/1e6) }
	for _, r := range all {
		checks := "off"
		if r.Checks {
			checks = "on"
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Size, r.Rows, checks,
			cell(r, caseFloor, wallOf, dur), cell(r, caseFloor, haproxyOf, perK(r)),
			cell(r, caseTest, cpuOf, perK(r)), cell(r, caseExecd, cpuOf, perK(r)),
			cell(r, caseOnce, wallOf, dur), cell(r, caseOnce, cpuOf, perK(r)),
			cell(r, caseOnce, rssOf, mb), cell(r, caseExecd, rssOf, mb),
			cell(r, caseTelegrafOnce, wallOf, dur), cell(r, caseTelegrafOnce, rssOf, mb))
	}
	if ref == nil || !ref.has(caseOnce) {
		return
	}
	fmt.Fprintln(w)
	base := ref.median(caseOnce, rssOf)
	for _, r := range all {
		if r == ref || !r.has(caseOnce) || r.Rows < ref.Rows {
			continue
		}
		v := r.median(caseOnce, rssOf)
		verdict := "missed"
		if v <= 1.2*base {
			verdict = "met"
		}
		fmt.Fprintf(w, "- -once peak RSS at %s against 1000x10, at most 1.2x: %.1f vs %.1f MB (%.2fx), %s\n", r.Size, v/1e6, base/1e6, v/base, verdict)
	}
	fmt.Fprintln(w)
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
	procs := "GOMAXPROCS unset (hap-monitor runs Go code on one CPU)"
	if env := os.Getenv("GOMAXPROCS"); env != "" {
		procs = "GOMAXPROCS=" + env + " for every process measured"
	}
	return fmt.Sprintf("%d cores %s, %s, %s", runtime.NumCPU(), model, runtime.Version(), procs)
}
