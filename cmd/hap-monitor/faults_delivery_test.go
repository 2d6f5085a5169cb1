package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// Faults on the Telegraf side (the execd output reading line protocol from
// stdin) and in delivery (Graphite down, closing connections, nobody on a
// UDP port), each run through the real binary against servers run here.

// proc is the binary running in the background.
type proc struct {
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	stdout, stderr *testbed.SyncBuffer
	done           chan struct{}
	err            error         // set when done is closed
	wall           time.Duration // start to exit, set when done is closed
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), stdout: &testbed.SyncBuffer{}, stderr: &testbed.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); p.wall = time.Since(start); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait returns the exit status, failing the test if the process is still
// running after d.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("still running %s later; killed. stderr:\n%s", d, p.stderr)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(p.err, &exit):
		return exit.ExitCode()
	case p.err != nil:
		t.Fatalf("waiting for %s: %v", p.cmd.Path, p.err)
	}
	return 0
}

// drain waits up to 30 s for s to read every connection to its end.
func drain(t *testing.T, s *testbed.GraphiteSink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Drain(ctx); err != nil {
		t.Fatal(err)
	}
}

// noPanic fails the test if stderr shows a Go panic or fatal error.
func noPanic(t *testing.T, stderr string) {
	t.Helper()
	for _, s := range []string{"panic:", "goroutine ", "fatal error:"} {
		if strings.Contains(stderr, s) {
			t.Fatalf("stderr shows a crash (%q):\n%s", s, stderr)
		}
	}
}

// graphiteOut writes a config with one TCP graphite output to addr.
func graphiteOut(t *testing.T, dir, addr, extra string) string {
	t.Helper()
	return writeFile(t, dir, "out.conf", fmt.Sprintf(`
[[outputs.graphite_statsd]]
  servers = [%q]
  format = "graphite"
  transport = "tcp"
  prefix = "f"
%s`, addr, extra))
}

// graphiteLine is one plaintext line: path, value, timestamp.
var graphiteLine = regexp.MustCompile(`^(\S+) (\S+) (\d+)$`)

func truncateForLog(s string) string {
	if len(s) > 2000 {
		return s[:2000] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}

// outputCase is line protocol fed to the execd output and what the user
// should see: the warnings (line number -> text), and what reached Graphite
// (path -> value, all stamped ts).
type outputCase struct {
	lines []string
	warns map[int]string
	want  map[string]string
}

// run feeds the lines to the execd output delivering to a fresh sink, and
// checks the exit status (0: everything that decoded was delivered), the
// warnings and what arrived.
func (c outputCase) run(t *testing.T, bin string, ts int64) string {
	t.Helper()
	sink := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{})
	conf := graphiteOut(t, t.TempDir(), sink.Addr, "")
	_, stderr, code := runBinary(t, bin, strings.Join(c.lines, "\n")+"\n", "-config", conf)
	noPanic(t, stderr)
	if code != 0 {
		t.Errorf("exit %d, want 0 (every line that decoded was delivered); stderr:\n%s", code, truncateForLog(stderr))
	}
	for n, text := range c.warns {
		re := regexp.MustCompile(`(?m)^W! line ` + fmt.Sprint(n) + `: ` + text + `$`)
		if !re.MatchString(stderr) {
			t.Errorf("no warning for line %d matching %q; stderr:\n%s", n, text, truncateForLog(stderr))
		}
	}
	got := map[string]string{}
	for _, l := range sink.Lines() {
		if len(l) > 16384 {
			t.Errorf("a %d-byte line was sent to Graphite", len(l))
		}
		if !utf8.ValidString(l) {
			t.Errorf("invalid UTF-8 sent to Graphite: %q", l)
		}
		m := graphiteLine.FindStringSubmatch(l)
		switch {
		case m == nil:
			t.Errorf("not a graphite line: %q", truncateForLog(l))
		case m[3] != fmt.Sprint(ts):
			t.Errorf("%s: timestamp %s, want %d", m[1], m[3], ts)
		case got[m[1]] != "":
			t.Errorf("%s arrived twice", m[1])
		default:
			got[m[1]] = m[2]
		}
	}
	for path, v := range c.want {
		if got[path] != v {
			t.Errorf("%s = %q, want %q", path, got[path], v)
		}
	}
	for path, v := range got {
		if _, ok := c.want[path]; !ok {
			t.Errorf("unexpected %s %s", path, v)
		}
	}
	return stderr
}

// warnLines counts the W! and E! lines in stderr.
func warnLines(stderr string) int {
	return len(regexp.MustCompile(`(?m)^[WE]! `).FindAllStringIndex(stderr, -1))
}

func TestExecdOutputLongLines(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	ts := time.Now().Unix() - 60
	big := strings.Repeat("x", 64<<10)
	huge := strings.Repeat("y", 5<<20) // over the 4 MB a line may hold
	c := outputCase{
		lines: []string{
			fmt.Sprintf("lp,host=h,k=a v=1 %d", ts*1e9),
			// A 64 KB string field: strings have no place in Graphite and
			// are skipped (README); the line's numeric field still goes.
			fmt.Sprintf(`lp,host=h,k=b s="%s",v=2 %d`, big, ts*1e9),
			// A 64 KB tag value makes a 64 KB path: carbon would drop the
			// connection on it, so that line is skipped with a warning.
			fmt.Sprintf("lp,host=h,k=%s v=3 %d", big, ts*1e9),
			fmt.Sprintf("lp,host=h,k=c v=4 %d", ts*1e9),
			fmt.Sprintf(`lp,host=h,k=d s="%s",v=5 %d`, huge, ts*1e9),
			fmt.Sprintf("lp,host=h,k=e v=6 %d", ts*1e9),
		},
		warns: map[int]string{5: `longer than 4194304 bytes, skipped`},
		want:  map[string]string{"f.h.a.lp.v": "1", "f.h.b.lp.v": "2", "f.h.c.lp.v": "4", "f.h.e.lp.v": "6"},
	}
	stderr := c.run(t, bin, ts)
	if !regexp.MustCompile(`(?m)^W! \[outputs\.graphite_statsd\] skipped 1 lines longer than 16384 bytes, e\.g\. "f\.h\.xxxx`).MatchString(stderr) {
		t.Errorf("no warning about the 64 KB Graphite line:\n%s", truncateForLog(stderr))
	}
	if n := warnLines(stderr); n != 2 {
		t.Errorf("%d warnings, want 2:\n%s", n, truncateForLog(stderr))
	}
}

func TestExecdOutputInvalidUTF8(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	ts := time.Now().Unix() - 60
	c := outputCase{
		lines: []string{
			fmt.Sprintf("lp,host=h,k=a v=1 %d", ts*1e9),
			fmt.Sprintf("lp,host=h,k=b\xff\xfe v=2 %d", ts*1e9), // tag value
			fmt.Sprintf("l\xc3p,host=h,k=c v=3 %d", ts*1e9),     // measurement
			fmt.Sprintf("lp,host=h,k\xff=d v=4 %d", ts*1e9),     // tag key
			fmt.Sprintf("lp,host=h,k=e v\xff=5 %d", ts*1e9),     // field key
			// A string value is not checked, and never goes to Graphite.
			fmt.Sprintf(`lp,host=h,k=f s="\xff",v=6 %d`, ts*1e9),
			fmt.Sprintf("lp,host=h,k=g v=7 %d", ts*1e9),
		},
		warns: map[int]string{
			2: `column 13: invalid utf-8 sequence in token "b\\xff\\xfe"`,
			3: `column 1: invalid utf-8 sequence in token "l\\xc3p"`,
			4: `column 11: invalid utf-8 sequence in token "k\\xff"`,
			5: `column 15: invalid utf-8 sequence in token "v\\xff"`,
		},
		want: map[string]string{"f.h.a.lp.v": "1", "f.h.f.lp.v": "6", "f.h.g.lp.v": "7"},
	}
	if stderr := c.run(t, bin, ts); warnLines(stderr) != len(c.warns) {
		t.Errorf("%d warnings, want %d:\n%s", warnLines(stderr), len(c.warns), stderr)
	}
}

func TestExecdOutputBadTypes(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	ts := time.Now().Unix() - 60
	line := func(k, fields string) string { return fmt.Sprintf("lp,host=h,k=%s %s %d", k, fields, ts*1e9) }
	c := outputCase{
		lines: []string{
			line("a", "f=1"),
			line("b", "f=1x"),
			line("c", "f=tru"),
			line("d", `f="unterminated`),
			line("e", "f=1u"),
			line("g", "f=18446744073709551615u"),
			line("h", "f=-1u"),
			line("i", "f=t,g=F"),
			line("j", "f=1.5e3,g=-2i"),
			line("k", "f=1d"),
			line("l", "f=1"),
		},
		warns: map[int]string{
			2:  `column 17: cannot parse value for field key "f": invalid float value syntax`,
			3:  `column 17: cannot parse value for field key "f": invalid bool value "tru"`,
			4:  `column 17: expected closing quote for string field value, found end of input`,
			7:  `column 17: cannot parse value for field key "f": invalid unsigned integer value syntax`,
			10: `column 17: cannot parse value for field key "f": invalid float value syntax`,
		},
		// Unsigned, boolean, exponent and negative integer values are
		// valid line protocol and go as plain numbers.
		want: map[string]string{
			"f.h.a.lp.f": "1",
			"f.h.e.lp.f": "1",
			"f.h.g.lp.f": "18446744073709551615",
			"f.h.i.lp.f": "1",
			"f.h.i.lp.g": "0",
			"f.h.j.lp.f": "1500",
			"f.h.j.lp.g": "-2",
			"f.h.l.lp.f": "1",
		},
	}
	if stderr := c.run(t, bin, ts); warnLines(stderr) != len(c.warns) {
		t.Errorf("%d warnings, want %d:\n%s", warnLines(stderr), len(c.warns), stderr)
	}
}

func TestExecdOutputStdinClosedMidLine(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	ts := time.Now().Unix() - 60
	// More than a batch (1000) of whole lines, then the writer dies
	// halfway through the next one: stdin ends without its newline.
	const whole = 2500
	// The last cut parses: it is still left out, its value may be short.
	for _, cut := range []string{"lp,host=h,k=cut v=", "lp,host=h,k=cut", "lp,host=h,k=cut v=\"abc", "lp,host=h,k=cut v=12"} {
		t.Run(cut, func(t *testing.T) {
			c := outputCase{want: map[string]string{}}
			for i := 1; i <= whole; i++ {
				c.lines = append(c.lines, fmt.Sprintf("lp,host=h,k=p%04d v=%d %d", i, i, ts*1e9))
				c.want[fmt.Sprintf("f.h.p%04d.lp.v", i)] = fmt.Sprint(i)
			}
			sink := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{})
			conf := graphiteOut(t, t.TempDir(), sink.Addr, "")
			p := startProc(t, bin, "-config", conf)
			if _, err := io.WriteString(p.stdin, strings.Join(c.lines, "\n")+"\n"+cut); err != nil {
				t.Fatal(err)
			}
			p.stdin.Close()
			code := p.wait(t, time.Minute)
			stderr := p.stderr.String()
			noPanic(t, stderr)
			if code != 0 {
				t.Errorf("exit %d, want 0; stderr:\n%s", code, stderr)
			}
			re := regexp.MustCompile(fmt.Sprintf(`(?m)^W! line %d: input ended before its line break, skipped`, whole+1))
			if !re.MatchString(stderr) || warnLines(stderr) != 1 {
				t.Errorf("want one warning, for line %d; stderr:\n%s", whole+1, stderr)
			}
			got := map[string]string{}
			for _, l := range sink.Lines() {
				m := graphiteLine.FindStringSubmatch(l)
				if m == nil || m[3] != fmt.Sprint(ts) || got[m[1]] != "" {
					t.Fatalf("bad, late or repeated line %q", l)
				}
				got[m[1]] = m[2]
			}
			if len(got) != len(c.want) {
				t.Errorf("%d lines arrived, want %d", len(got), len(c.want))
			}
			for path, v := range c.want {
				if got[path] != v {
					t.Errorf("%s = %q, want %q", path, got[path], v)
				}
			}
		})
	}
}

func TestExecdOutputSIGTERMMidDeliverySpools(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	// Graphite reads the first lines, then stops reading: the kernel's
	// buffers fill and a write is left in flight when SIGTERM comes.
	sink := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{PauseAfter: 1000})
	dir := t.TempDir()
	conf := graphiteOut(t, dir, sink.Addr, fmt.Sprintf(`  timeout = "3s"
  metric_buffer_limit = 1000000
  spool_dir = %q
`, dir+"/spool"))
	const lines = 400000 // about 14 MB of Graphite lines: more than the socket buffers hold
	ts := time.Now().Unix() - 60
	var in bytes.Buffer
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&in, "lp,host=h,k=p%06d v=%d %d\n", i, i, ts*1e9)
	}
	p := startProc(t, bin, "-config", conf)
	var fed atomic.Int64
	go func() {
		// stdin stays open: only the signal ends the run.
		for b := in.Bytes(); len(b) > 0; {
			n, err := p.stdin.Write(b[:min(len(b), 64<<10)])
			fed.Add(int64(n))
			if err != nil {
				return // the process stopped reading
			}
			b = b[n:]
		}
	}()
	waitUntil(t, time.Minute, "the sink to read its first 1000 lines", func() bool { return len(sink.Lines()) >= 1000 })
	// Delivery to the stalled sink never holds back reading stdin: all of
	// it goes into the buffer while a write is blocked.
	waitUntil(t, time.Minute, "all of stdin to be read", func() bool { return fed.Load() == int64(in.Len()) })
	if n := len(sink.Lines()); n >= lines {
		t.Fatalf("the paused sink read %d lines: nothing was left in flight", n)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	code := p.wait(t, 30*time.Second)
	t.Logf("exited %d, %s after SIGTERM", code, time.Since(sent).Round(time.Millisecond))
	stderr := p.stderr.String()
	t.Logf("stderr:\n%s", stderr)
	noPanic(t, stderr)
	if code != 1 {
		t.Errorf("exit %d, want 1 (metrics undelivered, spooled)", code)
	}
	saved := regexp.MustCompile(`(?m)^W! \[outputs\.graphite_statsd\] (\d+) undelivered metrics saved to (\S+); the next run sends them first \(the spool holds \d+ metrics \([^)]*\) in \d+ files?\)$`).FindStringSubmatch(stderr)
	if saved == nil {
		t.Fatal("no warning saying where the undelivered metrics were saved")
	}
	if warnLines(stderr) > 6 {
		t.Errorf("%d error and warning lines for one stalled server", warnLines(stderr))
	}

	// Graphite catches up on what its socket holds; the next run sends the
	// spool first.
	drain(t, sink)
	first := len(sink.Lines())
	stdout, stderr2, code2 := runBinary(t, bin, "", "-config", conf)
	noPanic(t, stderr2)
	if code2 != 0 {
		t.Errorf("second run: exit %d, want 0; stderr:\n%s%s", code2, stdout, stderr2)
	}
	if !strings.Contains(stderr2, "I! [outputs.graphite_statsd] every metric delivered (the spool holds 0 metrics (0 B) in 0 files; of the "+saved[1]+" metrics loaded from the spool, "+saved[1]+" were delivered)") {
		t.Errorf("second run did not load the %s spooled metrics:\n%s", saved[1], stderr2)
	}
	all := sink.Lines()
	if got := fmt.Sprint(len(all) - first); got != saved[1] {
		t.Errorf("second run delivered %s lines, want the %s spooled", got, saved[1])
	}

	// Together the runs delivered a whole prefix of the input: all that was
	// read before the signal, nothing missing in between.
	seen := make([]bool, lines+1)
	for _, l := range all {
		var i, v, at int
		if _, err := fmt.Sscanf(l, "f.h.p%06d.lp.v %d %d", &i, &v, &at); err != nil || i != v || i < 1 || i > lines || at != int(ts) {
			t.Fatalf("bad line %q (%v)", l, err)
		}
		seen[i] = true
	}
	k := 0
	for k < lines && seen[k+1] {
		k++
	}
	for i := k + 1; i <= lines; i++ {
		if seen[i] {
			t.Fatalf("lines 1-%d arrived, then %d is missing but %d arrived", k, k+1, i)
		}
	}
	t.Logf("lines 1-%d of %d delivered across both runs; %d spooled", k, lines, len(all)-first)
	if k != lines {
		t.Errorf("only lines 1-%d of %d delivered: everything read from stdin must arrive", k, lines)
	}
}

func TestExecdInputStdinClosedDuringGather(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	const backends, servers = 1000, 10
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{Backends: backends, ServersPerBackend: servers})
	conf := writeFile(t, t.TempDir(), "in.conf", fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n  timeout = \"30s\"\n", h.AdminSocket))
	// Telegraf asks for a gather and goes away at once: stdin ends while
	// the gather of 12,000 rows is still being read.
	p := startProc(t, bin, "-config", conf, "-poll_interval_disabled")
	if _, err := io.WriteString(p.stdin, "\n"); err != nil {
		t.Fatal(err)
	}
	p.stdin.Close()
	code := p.wait(t, time.Minute)
	stdout, stderr := p.stdout.String(), p.stderr.String()
	noPanic(t, stderr)
	if code != 0 || stderr != "" {
		t.Errorf("exit %d, want 0, and nothing logged; stderr:\n%s", code, stderr)
	}
	if !strings.HasSuffix(stdout, "\n") {
		t.Errorf("output ends mid-line: ...%q", stdout[max(0, len(stdout)-100):])
	}
	rows := map[string]int{}
	for _, l := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		m := wholeLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a whole line of line protocol: %q", truncateForLog(l))
		}
		if gen := generatedRow.FindString(l); gen != "" {
			rows[gen]++
		}
		rows[m[1]]++
	}
	// Every generated proxy has a FRONTEND, a BACKEND and its servers
	// (besides them, the test bed's own stats proxies).
	if want := backends * (servers + 2); rows["haproxy"] < want || rows["haproxy_info"] != 1 {
		t.Errorf("got %d haproxy and %d haproxy_info lines, want %d+ and 1", rows["haproxy"], rows["haproxy_info"], want)
	}
	for i := 1; i <= backends; i++ {
		if n := rows[",proxy="+testbed.GeneratedBackend(i)+","]; n != servers+2 {
			t.Fatalf("proxy %s: %d lines, want %d", testbed.GeneratedBackend(i), n, servers+2)
		}
	}
}

// wholeLine is a line of the input's line protocol, ending in its timestamp.
var wholeLine = regexp.MustCompile(`^(haproxy(?:_info)?),.+ \d{19}$`)

// generatedRow finds the proxy tag of a generated proxy's row.
var generatedRow = regexp.MustCompile(`,proxy=be_\d{4},`)

// pipeline runs hap-monitor every second against h, delivering to the
// faulty Graphite at addr and to a reference sink that always works; it
// returns the process and the reference.
func pipeline(t *testing.T, bin string, h *testbed.HAProxy, addr string) (*proc, *testbed.GraphiteSink) {
	t.Helper()
	ref := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{})
	out := func(server string) string {
		return fmt.Sprintf("[[outputs.graphite_statsd]]\n  servers = [%q]\n  prefix = \"p\"\n  timeout = \"2s\"\n", server)
	}
	conf := writeFile(t, t.TempDir(), "pipeline.conf", fmt.Sprintf(`
[agent]
  hostname = "ph"
  flush_interval = "1s"
[[inputs.haproxy]]
  servers = [%q]
%s%s`, h.AdminSocket, out(addr), out(ref.Addr)))
	return startProc(t, bin, "-config", conf, "-poll_interval", "1s"), ref
}

// series is the path whose timestamps tell the intervals apart.
const series = "p.ph.1.app_v1.web-1.status.UP"

// stamps returns the distinct timestamps of series in lines, in order of
// first arrival.
func stamps(lines []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lines {
		if m := graphiteLine.FindStringSubmatch(l); m != nil && m[1] == series && !seen[m[3]] {
			seen[m[3]] = true
			out = append(out, m[3])
		}
	}
	return out
}

// caughtUp reports whether the faulty sink holds every interval the
// reference held when it was called.
func caughtUp(faulty func() []string, ref *testbed.GraphiteSink) func() bool {
	want := stamps(ref.Lines())
	return func() bool {
		got := map[string]bool{}
		for _, s := range stamps(faulty()) {
			got[s] = true
		}
		for _, s := range want {
			if !got[s] {
				return false
			}
		}
		return true
	}
}

// finish stops the pipeline and checks that the faulty Graphite got every
// line the reference got (repeats allowed), each interval in order, and
// that the run ended well.
func finish(t *testing.T, p *proc, faulty func() []string, ref *testbed.GraphiteSink) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := p.wait(t, time.Minute)
	stderr := p.stderr.String()
	t.Logf("exit %d; stderr:\n%s", code, truncateForLog(stderr))
	noPanic(t, stderr)
	if code != 0 {
		t.Errorf("exit %d, want 0: everything was delivered in the end", code)
	}
	got, want := map[string]bool{}, map[string]bool{}
	for _, l := range faulty() {
		got[l] = true
	}
	for _, l := range ref.Lines() {
		want[l] = true
	}
	missing := 0
	for l := range want {
		if !got[l] {
			if missing++; missing <= 5 {
				t.Errorf("never reached the faulty Graphite: %q", l)
			}
		}
	}
	for l := range got {
		if !want[l] {
			t.Errorf("not sent to the reference: %q", l)
		}
	}
	fs, rs := stamps(faulty()), stamps(ref.Lines())
	if strings.Join(fs, " ") != strings.Join(rs, " ") {
		t.Errorf("intervals of %s: faulty Graphite got %q, reference %q", series, fs, rs)
	}
	t.Logf("%d intervals, %d lines to the reference, %d (with repeats) to the faulty Graphite, %d missing", len(rs), len(ref.Lines()), len(faulty()), missing)
	if len(rs) < 4 {
		t.Errorf("only %d intervals ran", len(rs))
	}
}

func TestPipelineGraphiteDownAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	addr := testbed.ClosedAddr(t)
	p, ref := pipeline(t, bin, h, addr)
	waitUntil(t, time.Minute, "three intervals", func() bool { return len(stamps(ref.Lines())) >= 3 })
	faulty := testbed.NewGraphiteSink(t, addr, testbed.SinkOptions{})
	waitUntil(t, time.Minute, "two more intervals", func() bool { return len(stamps(ref.Lines())) >= 5 })
	waitUntil(t, time.Minute, "Graphite to catch up", caughtUp(faulty.Lines, ref))
	finish(t, p, faulty.Lines, ref)
}

func TestPipelineGraphiteDownMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	faulty := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{})
	p, ref := pipeline(t, bin, h, faulty.Addr)
	waitUntil(t, time.Minute, "two intervals delivered", func() bool { return len(stamps(faulty.Lines())) >= 2 })
	faulty.Stop()
	n := len(stamps(ref.Lines()))
	waitUntil(t, time.Minute, "two intervals with Graphite down", func() bool { return len(stamps(ref.Lines())) >= n+2 })
	back := testbed.NewGraphiteSink(t, faulty.Addr, testbed.SinkOptions{})
	both := func() []string { return append(faulty.Lines(), back.Lines()...) }
	waitUntil(t, time.Minute, "Graphite to catch up", caughtUp(both, ref))
	finish(t, p, both, ref)
}

func TestPipelineCarbonClosesAfterNLines(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	// How many lines one interval sends.
	probe := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{})
	conf := writeFile(t, t.TempDir(), "once.conf", fmt.Sprintf("[agent]\n  hostname = \"ph\"\n[[inputs.haproxy]]\n  servers = [%q]\n[[outputs.graphite_statsd]]\n  servers = [%q]\n  prefix = \"p\"\n", h.AdminSocket, probe.Addr))
	if _, stderr, code := runBinary(t, bin, "", "-config", conf, "-once"); code != 0 {
		t.Fatalf("probe run: exit %d: %s", code, stderr)
	}
	perInterval := len(probe.Lines())
	// Each connection takes an interval and a half, then is closed with
	// lines unread (a reset): every other delivery is cut halfway.
	faulty := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{CloseAfter: perInterval * 3 / 2})
	p, ref := pipeline(t, bin, h, faulty.Addr)
	waitUntil(t, time.Minute, "five intervals", func() bool { return len(stamps(ref.Lines())) >= 5 })
	waitUntil(t, time.Minute, "Graphite to catch up", caughtUp(faulty.Lines, ref))
	finish(t, p, faulty.Lines, ref)
	if faulty.Accepted() < 3 {
		t.Errorf("%d connections: the sink did not close enough of them", faulty.Accepted())
	}
}

// closedUDPPort returns a loopback UDP address nothing listens on.
func closedUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	_ = c.Close()
	return addr
}

func TestOnceUDPToAPortNobodyListensOn(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{Backends: 100, ServersPerBackend: 10})
	for _, format := range []string{"graphite", "statsd"} {
		t.Run(format, func(t *testing.T) {
			addr := closedUDPPort(t)
			conf := writeFile(t, t.TempDir(), "udp.conf", fmt.Sprintf(`
[[inputs.haproxy]]
  servers = [%q]
[[outputs.graphite_statsd]]
  servers = [%q]
  format = %q
  transport = "udp"
  timeout = "2s"
`, h.AdminSocket, addr, format))
			// On loopback the kernel turns the ICMP port unreachable into
			// ECONNREFUSED on the next send: the loss is seen and reported
			// (elsewhere UDP loss goes unnoticed).
			_, stderr, code := runBinary(t, bin, "", "-config", conf, "-once")
			noPanic(t, stderr)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			lost := regexp.MustCompile(`(?m)^E! \[outputs\.graphite_statsd\] delivery failed: ` + regexp.QuoteMeta(addr) + `: .*connection refused.*: (\d+) metrics lost \(set spool_dir`)
			if !lost.MatchString(stderr) {
				t.Errorf("no error naming %s, the refusal and the loss", addr)
			}
			// The failure, then the run's summary.
			if n := warnLines(stderr); n != 2 {
				t.Errorf("%d error lines for one unreachable server, want 2", n)
			}
			t.Logf("exit %d; stderr:\n%s", code, stderr)
		})
	}
}

func TestStatsdPacketsFitMaxPacketSize(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{Backends: 100, ServersPerBackend: 10})
	gauge := regexp.MustCompile(`^[^:|@\n]+:-?[0-9]+(\.[0-9]+)?\|g$`)
	counts := map[int]int{}
	for _, limit := range []int{0, 512} {
		t.Run(fmt.Sprint("max_packet_size=", limit), func(t *testing.T) {
			sink := testbed.NewUDPSink(t)
			option, want := "", 1432
			if limit != 0 {
				option, want = fmt.Sprintf("  max_packet_size = %d\n", limit), limit
			}
			conf := writeFile(t, t.TempDir(), "statsd.conf", fmt.Sprintf(`
[[inputs.haproxy]]
  servers = [%q]
[[outputs.graphite_statsd]]
  servers = [%q]
  format = "statsd"
%s`, h.AdminSocket, sink.Addr, option))
			_, stderr, code := runBinary(t, bin, "", "-config", conf, "-once")
			noPanic(t, stderr)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, want 0 and nothing logged; stderr:\n%s", code, stderr)
			}
			var got [][]byte
			waitUntil(t, 10*time.Second, "the datagrams to stop coming", func() bool {
				n := len(got)
				got = sink.Datagrams()
				return n > 0 && n == len(got)
			})
			gauges, full := 0, 0
			for _, d := range got {
				if len(d) > want {
					t.Errorf("a %d-byte datagram, over %d", len(d), want)
				}
				if len(d) > want-100 {
					full++
				}
				if !bytes.HasSuffix(d, []byte("\n")) {
					t.Errorf("datagram ends mid-line: ...%q", d[max(0, len(d)-60):])
				}
				for _, l := range strings.Split(strings.TrimSuffix(string(d), "\n"), "\n") {
					if !gauge.MatchString(l) {
						t.Errorf("not a whole gauge line: %q", l)
					}
					gauges++
				}
			}
			t.Logf("%d datagrams (%d within 100 bytes of the limit), %d gauges", len(got), full, gauges)
			// 100 x 10 servers, their frontends and backends, dozens of fields each.
			if gauges < 1200*20 {
				t.Errorf("only %d gauges arrived", gauges)
			}
			counts[limit] = gauges
		})
	}
	// UDP may drop under load, so the counts are reported, not compared.
	t.Logf("%d gauges in 1432-byte packets, %d in 512-byte ones", counts[0], counts[512])
}

// TestOneFailureOneLine: from cron, each failure is one E! line naming
// the socket or the server, the cause and what to check, and a failed run
// ends with one summary line. Cron mails every line.
func TestOneFailureOneLine(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	sink := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{})
	missing := filepath.Join(t.TempDir(), "nope.sock")
	for _, tc := range []struct {
		name, servers, graphite string
		want                    []string // each error line, as a regexp
	}{
		{"a Graphite host that does not resolve", fmt.Sprintf("[%q]", h.AdminSocket), "graphite.invalid:2003", []string{
			`^E! \[outputs\.graphite_statsd\] delivery failed: graphite\.invalid:2003: dial tcp: lookup graphite\.invalid.*\(.*\): \d+ metrics lost \(set spool_dir to keep undelivered metrics for the next run\)$`,
			`^E! \d+ metrics not delivered$`,
		}},
		{"a socket that does not exist", fmt.Sprintf("[%q, %q]", missing, h.AdminSocket), sink.Addr, []string{
			`^E! \[inputs\.haproxy\] show stat on ` + regexp.QuoteMeta(missing) + `: .*no such file or directory \(is HAProxy running, .*\)$`,
			`^E! 1 input error$`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := writeFile(t, t.TempDir(), "cron.conf", fmt.Sprintf("[[inputs.haproxy]]\n  servers = %s\n[[outputs.graphite_statsd]]\n  servers = [%q]\n  prefix = \"p\"\n", tc.servers, tc.graphite))
			_, stderr, code := runBinary(t, bin, "", "-config", conf, "-once")
			noPanic(t, stderr)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
				if !strings.HasPrefix(l, "I! ") && !strings.HasPrefix(l, "D! ") {
					lines = append(lines, l)
				}
			}
			if len(lines) != len(tc.want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(tc.want), stderr)
			}
			for i, w := range tc.want {
				if !regexp.MustCompile(w).MatchString(lines[i]) {
					t.Errorf("line %d: %s\nwant %s", i+1, lines[i], w)
				}
			}
		})
	}
}
