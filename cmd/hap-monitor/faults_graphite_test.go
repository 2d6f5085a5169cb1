package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// Delivery faults through the real binary in cron mode (-once): a real
// HAProxy of 1000 backends x 10 servers gathered, its 12,000 rows sent to
// a Graphite that stalls, lingers, reads slowly, crashes and comes back,
// or is shared by overlapping runs, over TCP and TLS. Every test counts
// the lines that arrive per timestamp against a healthy run measured
// first, and the metrics in the spool.

// graphiteMarker ends the path of one line of every show stat row (all
// row types have status.OTHER), so its lines count the rows of a gather.
const graphiteMarker = ".status.OTHER"

// gatherRef is what one healthy gather sends, measured.
type gatherRef struct {
	lines   int           // Graphite lines
	rows    int           // show stat rows: lines of the marker series
	metrics int           // rows, and the one haproxy_info
	bytes   int64         // bytes on the wire
	wall    time.Duration // a whole healthy -once run, start to exit
}

// graphiteBed is a 1000x10 HAProxy with health checks and the reference
// gather measured against it.
type graphiteBed struct {
	bin   string
	h     *testbed.HAProxy
	ref   gatherRef
	confs int
}

func newGraphiteBed(t *testing.T) *graphiteBed {
	t.Helper()
	b := &graphiteBed{bin: hapMonitor(t)}
	b.h = testbed.NewHAProxy(t, testbed.HAProxyOptions{Backends: 1000, ServersPerBackend: 10, Checks: true})
	b.ref = b.measure(t)
	return b
}

// conf writes a pipeline config gathering the HAProxy and sending to addr
// with the output's timeout, spool_dir and extra lines.
func (b *graphiteBed) conf(t *testing.T, addr, spool string, timeout time.Duration, extra string) string {
	t.Helper()
	b.confs++
	return writeFile(t, t.TempDir(), fmt.Sprintf("graphite%d.conf", b.confs), fmt.Sprintf(`
[agent]
  hostname = "gh"
[[inputs.haproxy]]
  servers = [%q]
[[outputs.graphite_statsd]]
  servers = [%q]
  format = "graphite"
  transport = "tcp"
  prefix = "g"
  timeout = %q
  spool_dir = %q
  ## These tests are of faults, not of the backlog's pace: a 1000x10
  ## gather is 834,389 lines, 8 s at the default.
  spool_replay_rate = 100000000
%s`, b.h.AdminSocket, addr, timeout, spool, extra))
}

// once runs the binary with conf and -once, and returns its stderr, exit
// status and wall time.
func (b *graphiteBed) once(t *testing.T, conf string) (string, int, time.Duration) {
	t.Helper()
	start := time.Now()
	_, stderr, code := runBinary(t, b.bin, "", "-config", conf, "-once")
	wall := time.Since(start)
	noPanic(t, stderr)
	return stderr, code, wall
}

// measure runs healthy gathers until two in a row send as many lines:
// HAProxy fills a server's check columns at its first check, spread over
// the first 2 s, so the first gathers of a new HAProxy are shorter.
func (b *graphiteBed) measure(t *testing.T) gatherRef {
	t.Helper()
	spool := filepath.Join(t.TempDir(), "spool")
	var prev gatherRef
	for i := range 15 {
		sink := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{Keep: testbed.KeepCounts, Marker: graphiteMarker})
		stderr, code, wall := b.once(t, b.conf(t, sink.Addr, spool, 5*time.Second, ""))
		if code != 0 || warnLines(stderr) > 0 {
			t.Fatalf("healthy run: exit %d; stderr:\n%s", code, stderr)
		}
		drain(t, sink)
		c := sink.Counts()
		_, bytes := sink.Total()
		sink.Stop()
		if len(c.Lines) != 1 || c.Malformed > 0 {
			t.Fatalf("healthy run: one gather sent lines stamped %v (%d malformed)", c.Lines, c.Malformed)
		}
		r := gatherRef{wall: wall, bytes: bytes}
		for ts, n := range c.Lines {
			r.lines, r.rows = n, c.Marks[ts]
		}
		r.metrics = r.rows + 1
		if i > 0 && r.lines == prev.lines && r.rows == prev.rows {
			r.wall = max(r.wall, prev.wall)
			t.Logf("one healthy gather: %d rows, %d metrics, %d Graphite lines, %.1f MB; a -once run takes %s (measured in %d runs)",
				r.rows, r.metrics, r.lines, float64(r.bytes)/1e6, r.wall.Round(time.Millisecond), i+1)
			if r.rows < 12000 {
				t.Fatalf("%d rows, want the 12,000 of 1000x10 and more", r.rows)
			}
			return r
		}
		prev = r
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no two healthy gathers in a row sent as many lines (last %d)", prev.lines)
	return prev
}

// checkGathers checks that counts hold want whole gathers: each second's
// lines are as many gathers of the reference as it has marker lines for,
// and no line is missing or repeated. It returns a summary for the log.
func (b *graphiteBed) checkGathers(t *testing.T, c testbed.SinkCounts, want int) string {
	t.Helper()
	if c.Malformed > 0 {
		t.Errorf("%d malformed lines, e.g. %q", c.Malformed, c.MalformedExample)
	}
	stamps := slices.Sorted(func(yield func(int64) bool) {
		for ts := range c.Lines {
			if !yield(ts) {
				return
			}
		}
	})
	var parts []string
	total := 0
	for _, ts := range stamps {
		n, marks := c.Lines[ts], c.Marks[ts]
		g := marks / b.ref.rows
		parts = append(parts, fmt.Sprintf("%d: %d lines, %d gathers", ts, n, g))
		switch {
		case marks%b.ref.rows != 0 || g == 0:
			t.Errorf("second %d: %d lines with %d rows' marker lines (%d a gather): a gather arrived in part or twice", ts, n, marks, b.ref.rows)
		case n != g*b.ref.lines:
			t.Errorf("second %d: %d lines for %d gathers, want %d (%+d)", ts, n, g, g*b.ref.lines, n-g*b.ref.lines)
		}
		total += g
	}
	if total != want {
		t.Errorf("%d gathers arrived, want %d: %s", total, want, strings.Join(parts, "; "))
	}
	return strings.Join(parts, "; ")
}

var (
	inputError  = regexp.MustCompile(`(?m)^E! \[inputs\.haproxy\].*$`)
	errorLine   = regexp.MustCompile(`(?m)^E! .*$`)
	warnOrError = regexp.MustCompile(`(?m)^[EW]! .*$`)
	// The closing line of a run that loaded spooled metrics says how many.
	loadedLine   = regexp.MustCompile(`(?m)^[IW]! \[outputs\.graphite_statsd\] .*; of the (\d+) metrics loaded from the spool, \d+ were delivered\)$`)
	overflowLine = regexp.MustCompile(`(?m)^W! \[outputs\.graphite_statsd\] metric buffer full \(metric_buffer_limit = \d+\): wrote the (\d+) oldest metrics to (\S+); the next run sends them$`)
)

// sumOf sums the first group of re's matches in stderr.
func sumOf(re *regexp.Regexp, stderr string) int {
	n := 0
	for _, m := range re.FindAllStringSubmatch(stderr, -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}

// spoolLogged is how many metrics the log says went to the spool: those
// left at the end of the run and those a full buffer wrote there.
func spoolLogged(stderr string) int {
	n, _ := savedCount(stderr)
	return n + sumOf(overflowLine, stderr)
}

// checkSpoolHolds checks that the spool holds gathers whole gathers, each
// metric once per gather, and that the logs say as many were saved.
func (b *graphiteBed) checkSpoolHolds(t *testing.T, stderr, spool string, gathers int) {
	t.Helper()
	lines := spooled(t, spool)
	if n := spoolLogged(stderr); n != len(lines) {
		t.Errorf("the log says %d metrics went to the spool, the spool holds %d", n, len(lines))
	}
	rows, info := 0, 0
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "haproxy,"):
			rows++
		case strings.HasPrefix(l, "haproxy_info,"):
			info++
		default:
			t.Errorf("not a metric of the gather: %q", truncateForLog(l))
		}
	}
	if len(lines) != gathers*b.ref.metrics || rows != gathers*b.ref.rows || info != gathers {
		t.Errorf("the spool holds %d metrics (%d haproxy, %d haproxy_info), want %d gathers of %d (%d and 1)",
			len(lines), rows, info, gathers, b.ref.metrics, b.ref.rows)
	}
}

// checkCatchUp checks a run against a healthy Graphite after runs that
// spooled: it exits 0, sends everything the spool held (the log says it
// loaded it), leaves the spool empty, and has nothing to warn about.
func checkCatchUp(t *testing.T, stderr string, code int, spool string, held int) {
	t.Helper()
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	if l := errorLine.FindAllString(stderr, -1); len(l) > 0 {
		t.Errorf("errors logged by a run that delivered everything: %q", l)
	}
	over := sumOf(overflowLine, stderr)
	if over > 0 {
		t.Errorf("misleading warnings: %d lines say that %d metrics went to the spool and the next run sends them, "+
			"yet this run loaded them back and delivered them (exit %d, spool empty afterwards): %q",
			len(overflowLine.FindAllString(stderr, -1)), over, code, overflowLine.FindAllString(stderr, -1))
	}
	for _, l := range warnOrError.FindAllString(stderr, -1) {
		if strings.HasPrefix(l, "W! ") && !overflowLine.MatchString(l) {
			t.Errorf("warning logged by a run that delivered everything: %q", l)
		}
	}
	// Metrics a full buffer wrote to the spool and this run loaded back
	// are loaded twice.
	if n := sumOf(loadedLine, stderr) - over; n != held {
		t.Errorf("the log says %d spooled metrics were loaded (%d of them written back by this run), want the %d spooled", n+over, over, held)
	}
	checkSpoolEmpty(t, spool)
}

// checkSpoolEmpty checks that no run left anything in the spool.
func checkSpoolEmpty(t *testing.T, spool string) {
	t.Helper()
	entries, err := os.ReadDir(spool)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) > 0 {
		t.Errorf("the spool is not empty after a healthy run: %q", names)
	}
}

// noWarnings fails the test for any E! or W! line of a run that should
// have none.
func noWarnings(t *testing.T, run, stderr string) {
	t.Helper()
	if l := warnOrError.FindAllString(stderr, -1); len(l) > 0 {
		t.Errorf("%s: want no error or warning, got %d:\n%s", run, len(l), truncateForLog(strings.Join(l, "\n")))
	}
}

// nextSecond waits until the next gather's timestamp differs from that of
// a gather made at or before at. Timestamps are rounded to the second
// ([agent] precision, as in Telegraf): at rounds up to at most the second
// after its own, so the clock must be half a second into the one after.
func nextSecond(t *testing.T, at time.Time) {
	t.Helper()
	after := time.Unix(at.Unix()+1, 5e8)
	waitUntil(t, 3*time.Second, "the next second", func() bool { return time.Now().After(after) })
}

// A run against a Graphite that stopped reading makes at most
// triesPerRun tries (its delivery, then Close's last try), and each ends
// at the output's timeout.
const triesPerRun = 2

// checkGaveUp checks that runs against a Graphite that stopped reading
// gave up as the timeout says, from what happened rather than the clock:
// every run logged its failure as a timeout, the sink saw between one and
// triesPerRun connections a run (tries counts them), and each run ended
// within its tries' timeouts and a margin of five timeouts more for the
// rest (the gather, the spool). A run that hung would be killed at the
// test's deadline; the margin tells bounded from hung, not fast from
// slow, and a loaded machine keeps it (a 1000x10 gather takes 0.2 s idle,
// about 1 s with one CPU kept busy).
func checkGaveUp(t *testing.T, stderrs []string, walls []time.Duration, tries int, timeout time.Duration) {
	t.Helper()
	runs := len(stderrs)
	if tries < runs || tries > triesPerRun*runs {
		t.Errorf("the stalled Graphite saw %d connections from %d runs, want 1 to %d a run", tries, runs, triesPerRun)
	}
	timedOut := regexp.MustCompile(`(?m)^E! \[outputs\.graphite_statsd\] delivery failed: .*(nothing for |within timeout )` +
		regexp.QuoteMeta(timeout.String()))
	limit := time.Duration(triesPerRun+5) * timeout
	for i, stderr := range stderrs {
		if !timedOut.MatchString(stderr) {
			t.Errorf("run %d of %d: no E! line saying the delivery timed out after %s:\n%s", i+1, runs, timeout, stderr)
		}
		if walls[i] >= limit {
			t.Errorf("run %d of %d took %s with timeout %s, want less than %s (%d tries and 5 timeouts more)",
				i+1, runs, walls[i].Round(time.Millisecond), timeout, limit, triesPerRun)
		}
	}
}

// tlsCase is a transport for the tests that run over TCP and TLS.
type tlsCase struct {
	name  string
	sink  *tls.Config // the sink's; nil for plain TCP
	extra string      // the output's TLS options
}

func transports(t *testing.T) []tlsCase {
	t.Helper()
	pki := testbed.NewPKI(t)
	return []tlsCase{
		{name: "tcp"},
		{name: "tls", sink: pki.ServerTLS(false), extra: fmt.Sprintf("  tls_ca = %q\n", pki.CAFile)},
	}
}

// TestGraphiteStalled sends a gather to a Graphite that accepts and never
// reads: the run gives up within about twice the timeout, spools every
// metric and exits 1; once Graphite is back, the next run delivers both
// gathers. Over TLS the stalled sink does not even answer the handshake;
// the "after handshake" case reads one line and then stops, so that the
// TLS data path stalls too.
func TestGraphiteStalled(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	b := newGraphiteBed(t)
	cases := transports(t)
	tlsAfter := cases[1]
	tlsAfter.name = "tls after handshake"
	for _, c := range append(cases, tlsAfter) {
		t.Run(c.name, func(t *testing.T) {
			opts := testbed.SinkOptions{Stalled: true, Keep: testbed.KeepCounts, Marker: graphiteMarker, TLS: c.sink}
			if c.name == tlsAfter.name {
				opts.Stalled, opts.PauseAfter = false, 1
			}
			b.stalledThenHealthy(t, opts, c.extra)
		})
	}
}

func (b *graphiteBed) stalledThenHealthy(t *testing.T, opts testbed.SinkOptions, extra string) {
	const timeout = 5 * time.Second
	spool := filepath.Join(t.TempDir(), "spool")
	stalled := testbed.NewGraphiteSink(t, "127.0.0.1:0", opts)
	conf := b.conf(t, stalled.Addr, spool, timeout, extra)
	start := time.Now()
	stderr, code, wall := b.once(t, conf)
	t.Logf("stalled Graphite: exit %d after %s (%.1f x timeout %s; a healthy run takes %s); stderr:\n%s",
		code, wall.Round(time.Millisecond), wall.Seconds()/timeout.Seconds(), timeout, b.ref.wall.Round(time.Millisecond), stderr)
	if code != 1 {
		t.Errorf("exit %d, want 1: nothing was delivered", code)
	}
	if l := inputError.FindAllString(stderr, -1); len(l) > 0 {
		t.Errorf("the HAProxy socket read failed while Graphite stalled: %q", l)
	}
	checkGaveUp(t, []string{stderr}, []time.Duration{wall}, stalled.Accepted(), timeout)
	b.checkSpoolHolds(t, stderr, spool, 1)
	read, _ := stalled.Total()
	t.Logf("the stalled sink read %d lines on %d connections", read, stalled.Accepted())

	// Graphite crashes (what its socket held is gone) and comes back well.
	stalled.Stop()
	healthy := testbed.NewGraphiteSink(t, stalled.Addr, testbed.SinkOptions{Keep: testbed.KeepCounts, Marker: graphiteMarker, TLS: opts.TLS})
	nextSecond(t, start.Add(wall))
	stderr2, code2, wall2 := b.once(t, conf)
	t.Logf("Graphite back: exit %d after %s; stderr:\n%s", code2, wall2.Round(time.Millisecond), stderr2)
	checkCatchUp(t, stderr2, code2, spool, b.ref.metrics)
	drain(t, healthy)
	t.Logf("Graphite received %s", b.checkGathers(t, healthy.Counts(), 2))
}

// TestGraphiteStalledTLSEndsInTime repeats, with a shorter timeout, the
// stall of a Graphite that completed the TLS handshake and then stopped
// reading: every run must give up within about twice the timeout, as over
// TCP, whatever is left unsent on the connection when it is closed.
func TestGraphiteStalledTLSEndsInTime(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	b := newGraphiteBed(t)
	pki := testbed.NewPKI(t)
	const timeout = 2 * time.Second
	var walls []string
	for i := range 3 {
		spool := filepath.Join(t.TempDir(), "spool")
		sink := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{PauseAfter: 1, Keep: testbed.KeepTotals, TLS: pki.ServerTLS(false)})
		stderr, code, wall := b.once(t, b.conf(t, sink.Addr, spool, timeout, fmt.Sprintf("  tls_ca = %q\n", pki.CAFile)))
		sink.Stop()
		walls = append(walls, wall.Round(time.Millisecond).String())
		if code != 1 {
			t.Errorf("run %d: exit %d, want 1; stderr:\n%s", i+1, code, stderr)
		}
		checkGaveUp(t, []string{stderr}, []time.Duration{wall}, sink.Accepted(), timeout)
		b.checkSpoolHolds(t, stderr, spool, 1)
	}
	t.Logf("runs against a TLS Graphite that stopped reading after the handshake, timeout %s: %s", timeout, strings.Join(walls, ", "))
}

// TestGraphiteLingering sends a gather to a Graphite that reads
// everything but never closes its side after the client's: the run
// counts it delivered, quietly, without waiting out the timeout.
func TestGraphiteLingering(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	b := newGraphiteBed(t)
	for _, c := range transports(t) {
		t.Run(c.name, func(t *testing.T) {
			// A run that waited for the server's close would take the
			// whole timeout: 30 s, which a healthy run (0.2 s idle, a
			// few seconds on a loaded machine) never comes near.
			const timeout = 30 * time.Second
			spool := filepath.Join(t.TempDir(), "spool")
			sink := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{Linger: true, Keep: testbed.KeepCounts, Marker: graphiteMarker, TLS: c.sink})
			stderr, code, wall := b.once(t, b.conf(t, sink.Addr, spool, timeout, c.extra))
			t.Logf("lingering Graphite: exit %d after %s (a healthy run takes %s); stderr:\n%s", code, wall.Round(time.Millisecond), b.ref.wall.Round(time.Millisecond), stderr)
			if code != 0 {
				t.Errorf("exit %d, want 0", code)
			}
			noWarnings(t, "the run", stderr)
			if wall >= timeout {
				t.Errorf("the run took %s: it waited out the timeout (%s) for a server that read everything", wall.Round(time.Millisecond), timeout)
			}
			drain(t, sink)
			if sink.EOFs() < 1 || sink.Closed() != 0 {
				t.Errorf("the sink read %d EOFs and closed %d connections: it did not linger", sink.EOFs(), sink.Closed())
			}
			t.Logf("Graphite received %s", b.checkGathers(t, sink.Counts(), 1))
			checkSpoolEmpty(t, spool)
		})
	}
}

// TestGraphiteSlow sends a gather to a Graphite that reads it steadily
// but takes several times the timeout in all: a timeout bounds a stall,
// not a delivery, so everything arrives.
func TestGraphiteSlow(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	b := newGraphiteBed(t)
	const timeout = time.Second
	const takes = 5 * time.Second
	rate := int(float64(b.ref.bytes) / takes.Seconds())
	spool := filepath.Join(t.TempDir(), "spool")
	sink := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{
		BytesPerSecond: rate, ReceiveBuffer: 64 << 10, Keep: testbed.KeepCounts, Marker: graphiteMarker,
	})
	stderr, code, wall := b.once(t, b.conf(t, sink.Addr, spool, timeout, ""))
	t.Logf("Graphite reading %.1f MB/s: exit %d after %s (%.1f x timeout %s); stderr:\n%s",
		float64(rate)/1e6, code, wall.Round(time.Millisecond), wall.Seconds()/timeout.Seconds(), timeout, stderr)
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	noWarnings(t, "the run", stderr)
	if wall < 3*timeout {
		t.Errorf("the run took %s: the sink was not slow enough to outlast the timeout several times", wall.Round(time.Millisecond))
	}
	drain(t, sink)
	t.Logf("Graphite received %s", b.checkGathers(t, sink.Counts(), 1))
	checkSpoolEmpty(t, spool)
}

// TestGraphiteFlapping crashes Graphite while a run delivers (every
// connection reset) and brings it back at once. Lines the crashed
// Graphite had read may arrive again (Graphite keeps one value per path
// and timestamp); none may be missing once a second run had Graphite up.
func TestGraphiteFlapping(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	b := newGraphiteBed(t)
	spool := filepath.Join(t.TempDir(), "spool")
	// The first connection reads a gather in about 2 s, so that the crash
	// comes mid-delivery; later ones read at full speed.
	sink := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{BytesPerSecond: int(b.ref.bytes / 2), Faulty: 1})
	conf := b.conf(t, sink.Addr, spool, 5*time.Second, "")
	start := time.Now()
	p := startProc(t, b.bin, "-config", conf, "-once")
	ended := make(chan time.Duration, 1)
	go func() { <-p.done; ended <- time.Since(start) }()
	for {
		if n, _ := sink.Total(); n >= int64(b.ref.lines/4) {
			break
		}
		select {
		case <-p.done:
			t.Fatalf("the run ended before Graphite had read a quarter of the gather; stderr:\n%s", p.stderr)
		case <-time.After(time.Millisecond):
		}
		if time.Since(start) > time.Minute {
			t.Fatal("Graphite read less than a quarter of the gather in a minute")
		}
	}
	sink.Stop()
	crashedAt := time.Since(start)
	crashed, _ := sink.Total()
	select {
	case <-p.done:
		t.Fatal("the run ended before Graphite crashed")
	default:
	}
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sink.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Since(start)
	code := p.wait(t, time.Minute)
	wall := <-ended
	stderr := p.stderr.String()
	noPanic(t, stderr)
	t.Logf("Graphite crashed %s into the run after reading %d lines, and was back at %s; the run exited %d at %s; stderr:\n%s",
		crashedAt.Round(time.Millisecond), crashed, restarted.Round(time.Millisecond), code, wall.Round(time.Millisecond), stderr)
	if code != 0 && code != 1 {
		t.Errorf("exit %d, want 0 (delivered after the restart) or 1 (spooled)", code)
	}
	if l := inputError.FindAllString(stderr, -1); len(l) > 0 {
		t.Errorf("input errors: %q", l)
	}
	if saved, ok := savedCount(stderr); code == 1 && !ok {
		t.Error("exit 1 without saying what was spooled")
	} else if code == 0 && ok {
		t.Errorf("exit 0, yet %d metrics were spooled", saved)
	}

	nextSecond(t, start.Add(wall))
	stderr2, code2, _ := b.once(t, conf)
	t.Logf("second run: exit %d; stderr:\n%s", code2, stderr2)
	checkCatchUp(t, stderr2, code2, spool, spoolLogged(stderr))
	drain(t, sink)

	// Every path of both gathers, at its gather's timestamp, at least once.
	all := sink.Lines()
	paths := map[string]map[string]bool{}
	for _, l := range all {
		m := graphiteLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a Graphite line: %q", l)
		}
		if paths[m[3]] == nil {
			paths[m[3]] = map[string]bool{}
		}
		paths[m[3]][m[1]] = true
	}
	distinct := 0
	for ts, ps := range paths {
		marks := 0
		for path := range ps {
			if strings.HasSuffix(path, graphiteMarker) {
				marks++
			}
		}
		if len(ps) != b.ref.lines || marks != b.ref.rows {
			t.Errorf("second %s: %d paths (%d rows), want the %d of a gather (%d rows)", ts, len(ps), marks, b.ref.lines, b.ref.rows)
		}
		distinct += len(ps)
	}
	if len(paths) != 2 {
		t.Errorf("lines stamped with %d seconds, want one for each of the 2 gathers", len(paths))
	}
	t.Logf("Graphite received %d lines on %d connections: %d distinct over %d gathers, %d repeated", len(all), sink.Accepted(), distinct, len(paths), len(all)-distinct)
}

// TestGraphiteOverlappingRuns starts cron runs that overlap, sharing one
// spool_dir, while Graphite stalls: a run that spooled first, then two
// runs at once (both find its file; only one may take it). The run after
// Graphite came back delivers each gather exactly once.
func TestGraphiteOverlappingRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	b := newGraphiteBed(t)
	const timeout = 2 * time.Second
	spool := filepath.Join(t.TempDir(), "spool")
	stalled := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{Stalled: true, Keep: testbed.KeepCounts})
	conf := b.conf(t, stalled.Addr, spool, timeout, "")

	stderr, code, wall := b.once(t, conf)
	if code != 1 {
		t.Fatalf("first run: exit %d, want 1; stderr:\n%s", code, stderr)
	}
	b.checkSpoolHolds(t, stderr, spool, 1)
	firstTries := stalled.Accepted()
	t.Logf("first run: exit 1 after %s, spooled its gather", wall.Round(time.Millisecond))

	start := time.Now()
	p1 := startProc(t, b.bin, "-config", conf, "-once")
	p2 := startProc(t, b.bin, "-config", conf, "-once")
	codes := []int{p1.wait(t, time.Minute), p2.wait(t, time.Minute)}
	both := time.Since(start)
	loaded := 0
	for i, p := range []*proc{p1, p2} {
		stderr := p.stderr.String()
		noPanic(t, stderr)
		t.Logf("overlapping run %d: exit %d; stderr:\n%s", i+1, codes[i], stderr)
		if codes[i] != 1 {
			t.Errorf("overlapping run %d: exit %d, want 1", i+1, codes[i])
		}
		if l := inputError.FindAllString(stderr, -1); len(l) > 0 {
			t.Errorf("overlapping run %d: input errors: %q", i+1, l)
		}
		loaded += sumOf(loadedLine, stderr)
	}
	if loaded != b.ref.metrics {
		t.Errorf("the overlapping runs loaded %d spooled metrics between them, want the first run's %d, once", loaded, b.ref.metrics)
	}
	checkGaveUp(t, []string{p1.stderr.String(), p2.stderr.String()}, []time.Duration{p1.wall, p2.wall}, stalled.Accepted()-firstTries, timeout)
	b.checkSpoolHolds(t, p1.stderr.String()+p2.stderr.String(), spool, 3)
	t.Logf("the overlapping runs ended %s after they started; the spool holds the 3 gathers", both.Round(time.Millisecond))

	stalled.Stop()
	healthy := testbed.NewGraphiteSink(t, stalled.Addr, testbed.SinkOptions{Keep: testbed.KeepCounts, Marker: graphiteMarker})
	nextSecond(t, start.Add(both))
	stderr, code, wall = b.once(t, conf)
	t.Logf("Graphite back: exit %d after %s; stderr:\n%s", code, wall.Round(time.Millisecond), stderr)
	checkCatchUp(t, stderr, code, spool, 3*b.ref.metrics)
	drain(t, healthy)
	t.Logf("Graphite received %s", b.checkGathers(t, healthy.Counts(), 4))
}
