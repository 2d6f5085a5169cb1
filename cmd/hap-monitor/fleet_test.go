package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/lineproto"
)

// The fleet recipe of the README: several HAProxy hosts, each running
// hap-monitor from cron with its own spool, send to one carbon-relay in
// consistent-hashing mode in front of two carbon-caches.

// fleetHosts are the hosts of the fleet, by their [agent] hostname.
var fleetHosts = []string{"lb1", "lb2", "lb3"}

// fleetConf is a host's cron configuration: the relay as its Graphite.
func fleetConf(t *testing.T, dir, host, socket, relay string) string {
	t.Helper()
	spool := filepath.Join(dir, host+"-spool")
	return writeFile(t, dir, host+".conf", fmt.Sprintf(`
[agent]
  hostname = %q
[[inputs.haproxy]]
  servers = [%q]
  include_fields = ["scur", "stot", "bin", "status.*", "Idle_pct"]
[[outputs.graphite_statsd]]
  servers = [%q]
  prefix = "fleet"
  timeout = "2s"
  spool_dir = %q
`, host, socket, relay, spool))
}

var plainName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// sentPaths runs the configuration with -test and returns the Graphite
// paths its gather makes with the default templates: one per numeric
// field, <prefix>.<host>.<process_num>[.<proxy>.<sv>].<field>.
func sentPaths(t *testing.T, bin, conf, prefix string) []string {
	t.Helper()
	stdout, stderr, code := runBinary(t, bin, "", "-config", conf, "-test")
	if code != 0 {
		t.Fatalf("-test: exit %d; stderr:\n%s", code, stderr)
	}
	var paths []string
	for _, line := range strings.Split(stdout, "\n") {
		m, err := lineproto.DecodeLine([]byte(line), time.Now())
		if err != nil {
			t.Fatalf("-test line %q: %v", line, err)
		}
		if m == nil {
			continue
		}
		tags := m.Tags()
		levels := []string{prefix, tags["host"], tags["process_num"]}
		switch m.Name() {
		case "haproxy":
			levels = append(levels, tags["proxy"], tags["sv"])
		case "haproxy_info":
		default:
			t.Fatalf("-test: unexpected measurement in %q", line)
		}
		for _, l := range levels {
			// Names that Graphite's sanitising leaves as they are.
			if !plainName.MatchString(l) {
				t.Fatalf("-test line %q: level %q would be sanitised", line, l)
			}
		}
		for _, f := range m.FieldList() {
			if _, isString := f.Value.(string); isString {
				continue
			}
			paths = append(paths, strings.Join(levels, ".")+"."+f.Key)
		}
	}
	return paths
}

// stored is what the caches hold of one path.
type stored struct {
	cache  string // instance of the cache holding it
	points []testbed.Point
}

// fleetStore reads every whisper file of the caches, by path; a path on
// more than one cache is a failure.
func fleetStore(t *testing.T, caches ...*testbed.Carbon) (map[string]stored, error) {
	t.Helper()
	all := map[string]stored{}
	for _, c := range caches {
		points, err := c.All()
		if err != nil {
			return nil, err // a whisper file being created: try again
		}
		for path, ps := range points {
			if other, ok := all[path]; ok {
				t.Fatalf("%s is on caches %s and %s: consistent hashing sends a path to one", path, other.cache, c.Instance)
			}
			all[path] = stored{cache: c.Instance, points: ps}
		}
	}
	return all, nil
}

// window is the span of seconds a run's gather may be stamped with.
type window struct{ from, to int64 }

func (w window) holds(ts int64) bool { return ts >= w.from && ts <= w.to }

// runWindow runs f and returns the seconds its gathers may carry:
// timestamps are rounded to the second, as Telegraf rounds them.
func runWindow(f func()) window {
	start := time.Now()
	f()
	end := time.Now()
	return window{start.Round(time.Second).Unix(), end.Round(time.Second).Unix()}
}

// fleetRelay is the relay a fleet sends through: carbon-relay or
// carbon-c-relay, stopped and started again on the same port.
type fleetRelay struct {
	addr  string
	stop  func() error
	start func(context.Context) error
}

// TestFleetThroughCarbonRelay runs the README's fleet recipe through
// Debian's carbon-relay (consistent hashing, pickle to the caches).
func TestFleetThroughCarbonRelay(t *testing.T) {
	testFleet(t, func(a, b *testbed.Carbon) fleetRelay {
		r := testbed.NewRelay(t, a, b)
		return fleetRelay{r.TCPAddr, r.Stop, r.Start}
	})
}

// TestFleetThroughCarbonCRelay runs it through Debian's carbon-c-relay
// (carbon_ch, plaintext to the caches), the relay the README recommends
// beside carbon-relay.
func TestFleetThroughCarbonCRelay(t *testing.T) {
	testFleet(t, func(a, b *testbed.Carbon) fleetRelay {
		r := testbed.NewCRelay(t, a, b)
		return fleetRelay{r.TCPAddr, r.Stop, r.Start}
	})
}

// testFleet sends three hosts' gathers through the relay newRelay starts
// in front of two carbon-caches, a and b: every path on one cache, one
// point per run; then the relay down for ten runs, each spooled; then the
// relay back, and every point of every run lands, once.
func testFleet(t *testing.T, newRelay func(a, b *testbed.Carbon) fleetRelay) {
	if testing.Short() {
		t.Skip("end-to-end: HAProxy, carbon-cache, the relay and the binary")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{Backends: 4, ServersPerBackend: 4})
	cacheA := testbed.NewCarbonWith(t, testbed.CarbonOptions{Instance: "a"})
	cacheB := testbed.NewCarbonWith(t, testbed.CarbonOptions{Instance: "b"})
	relay := newRelay(cacheA, cacheB)
	dir := t.TempDir()

	confs := map[string]string{}
	want := map[string]bool{} // every path the fleet sends
	for _, host := range fleetHosts {
		confs[host] = fleetConf(t, dir, host, h.AdminSocket, relay.addr)
		paths := sentPaths(t, bin, confs[host], "fleet")
		for _, p := range paths {
			if want[p] {
				t.Fatalf("%s twice in one gather", p)
			}
			want[p] = true
		}
		t.Logf("%s sends %d paths", host, len(paths))
	}
	if len(want) < 300 {
		t.Fatalf("the fleet sends %d paths: too few to show how they spread", len(want))
	}

	// waitStored waits until every path the fleet sends holds one point per
	// run so far, each in its run's window, and nothing else is stored.
	waitStored := func(runs []window) map[string]stored {
		t.Helper()
		var (
			all     map[string]stored
			problem string
		)
		deadline := time.Now().Add(60 * time.Second)
		for {
			var err error
			all, err = fleetStore(t, cacheA, cacheB)
			switch {
			case err != nil:
				problem = err.Error()
			default:
				problem = fleetProblem(all, want, runs)
			}
			if problem == "" {
				return all
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 60s, the caches hold %d paths of %d: %s", len(all), len(want), problem)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	runFleet := func(wantCode int, stderrWant string) {
		t.Helper()
		for _, host := range fleetHosts {
			_, stderr, code := runBinary(t, bin, "", "-config", confs[host], "-once")
			if code != wantCode {
				t.Fatalf("%s: exit %d, want %d; stderr:\n%s", host, code, wantCode, stderr)
			}
			if stderrWant != "" && !strings.Contains(stderr, stderrWant) {
				t.Errorf("%s: stderr does not say %q:\n%s", host, stderrWant, stderr)
			}
		}
	}

	// Every host, the relay up.
	var runs []window
	runs = append(runs, runWindow(func() { runFleet(0, "") }))
	all := waitStored(runs)
	perCache := map[string]int{}
	for _, s := range all {
		perCache[s.cache]++
	}
	t.Logf("paths per cache: %v", perCache)
	if perCache["a"] == 0 || perCache["b"] == 0 {
		t.Errorf("paths per cache %v: consistent hashing spreads them over both", perCache)
	}
	nextSecond(t, time.Now()) // the next gather gets a timestamp of its own

	// The relay down for ten runs: each host spools its gather and exits
	// 1, each run's gather in a file of its own.
	if err := relay.stop(); err != nil {
		t.Fatal(err)
	}
	const down = 10
	for range down {
		runs = append(runs, runWindow(func() { runFleet(1, "undelivered metrics saved to") }))
		nextSecond(t, time.Now()) // the next gather gets a timestamp of its own
	}
	for _, host := range fleetHosts {
		if files, _ := testbed.SpoolFiles(filepath.Join(dir, host+"-spool")); len(files) != down {
			t.Errorf("%s: %d files in its spool after %d runs with the relay down, want %d", host, len(files), down, down)
		}
	}

	// The relay back on its port: each host sends its spool, paced, then
	// its new gather; every point of every run lands, once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := relay.start(ctx); err != nil {
		t.Fatal(err)
	}
	runs = append(runs, runWindow(func() { runFleet(0, "metrics loaded from the spool, ") }))
	for _, host := range fleetHosts {
		if files, _ := filepath.Glob(filepath.Join(dir, host+"-spool", "*")); len(files) != 0 {
			t.Errorf("%s: spool not emptied: %v", host, files)
		}
	}
	after := waitStored(runs)
	for path, s := range after {
		if s.cache != all[path].cache {
			t.Errorf("%s moved from cache %s to %s across the relay's restart", path, all[path].cache, s.cache)
		}
	}
}

// fleetProblem says what the caches lack or hold beyond want, each path
// with one point per run in its run's window; "" when nothing.
func fleetProblem(all map[string]stored, want map[string]bool, runs []window) string {
	var missing, extra, wrong []string
	for p := range want {
		s, ok := all[p]
		switch {
		case !ok:
			missing = append(missing, p)
		case !pointsMatch(s.points, runs):
			wrong = append(wrong, fmt.Sprintf("%s %v", p, s.points))
		}
	}
	for p := range all {
		if !want[p] {
			extra = append(extra, p)
		}
	}
	var problems []string
	for _, l := range []struct {
		what  string
		paths []string
	}{{"missing", missing}, {"not sent", extra}, {"not one point per run", wrong}} {
		if len(l.paths) == 0 {
			continue
		}
		n := len(l.paths)
		sort.Strings(l.paths)
		if n > 5 {
			l.paths = append(l.paths[:5], "...")
		}
		problems = append(problems, fmt.Sprintf("%d %s (%s)", n, l.what, strings.Join(l.paths, ", ")))
	}
	if len(problems) > 0 {
		problems = append(problems, fmt.Sprintf("runs %v", runs))
	}
	return strings.Join(problems, "; ")
}

// pointsMatch reports whether points (oldest first) are one per run, each
// in its run's window.
func pointsMatch(points []testbed.Point, runs []window) bool {
	if len(points) != len(runs) {
		return false
	}
	for i, p := range points {
		if !runs[i].holds(p.Time) {
			return false
		}
	}
	return true
}
