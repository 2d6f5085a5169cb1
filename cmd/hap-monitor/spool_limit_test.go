package main

import (
	"fmt"
	"maps"
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

// dirSize is what dir takes on the disk, temporary files included.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	n, err := testbed.DirBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// spooledSeconds returns the distinct seconds of the spool's metrics,
// sorted: one per gather.
func spooledSeconds(t *testing.T, dir string) []int64 {
	t.Helper()
	seen := map[int64]bool{}
	for _, l := range spooled(t, dir) {
		ns, err := strconv.ParseInt(l[strings.LastIndexByte(l, ' ')+1:], 10, 64)
		if err != nil {
			t.Fatalf("spooled line %q: %v", truncateForLog(l), err)
		}
		seen[ns/1e9] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

var limitLine = regexp.MustCompile(`(?m)^W! \[outputs\.graphite_statsd\] spool_limit = [^:]+: left out (\d+) metrics, [^(]+\(the oldest spool file \(written [^)]+\)\) to stay within it$`)

// TestSpoolLimitAgainstARefusingGraphite runs the cron pipeline against a
// real 1000x10 HAProxy and a Graphite that refuses: each gather spools in
// at most 2.5 MB; runs never leave more than spool_limit, the oldest
// gathers going first with one warning naming spool_limit; then, Graphite
// back, one run sends every gather the spool kept and its own, whole, and
// leaves the spool empty.
func TestSpoolLimitAgainstARefusingGraphite(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: HAProxy and the binary")
	}
	b := newGraphiteBed(t)
	refused := testbed.ClosedAddr(t)

	// One gather's spool file.
	probe := filepath.Join(t.TempDir(), "spool")
	stderr, code, _ := b.once(t, b.conf(t, refused, probe, time.Second, ""))
	files := spooledFiles(t, probe)
	if code != 1 || len(files) != 1 {
		t.Fatalf("a refused run: exit %d, spool files %v; stderr:\n%s", code, files, stderr)
	}
	info, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	one := info.Size()
	t.Logf("one gather (%d metrics) spools in %d bytes (%.1f%% of its %.1f MB of Graphite lines)",
		b.ref.metrics, one, 100*float64(one)/float64(b.ref.bytes), float64(b.ref.bytes)/1e6)
	if one > 2_500_000 {
		t.Errorf("one gather spools in %d bytes, want at most 2.5 MB", one)
	}

	// Three gathers and a half fit; six runs are refused.
	limit := one*7/2 + one/10
	spool := filepath.Join(t.TempDir(), "spool")
	conf := b.conf(t, refused, spool, time.Second, fmt.Sprintf("  spool_limit = %d\n", limit))
	var stamps []int64 // each refused run's gather, by its time
	for i := range 6 {
		nextSecond(t, time.Now())
		stderr, code, _ := b.once(t, conf)
		if code != 1 {
			t.Fatalf("refused run %d: exit %d; stderr:\n%s", i, code, stderr)
		}
		stamps = append(stamps, slices.Max(spooledSeconds(t, spool)))
		if used := dirSize(t, spool); used > limit {
			t.Errorf("after refused run %d the spool takes %d bytes, over spool_limit = %d", i, used, limit)
		}
		if i == 3 {
			t.Logf("the first refused run over the limit:\n%s", stderr)
		}
		drops := limitLine.FindAllStringSubmatch(stderr, -1)
		switch {
		case i < 3 && len(drops) > 0:
			t.Errorf("refused run %d dropped within the limit: %q", i, drops)
		case i >= 3 && (len(drops) != 1 || drops[0][1] != fmt.Sprint(b.ref.metrics)):
			t.Errorf("refused run %d: want one warning naming spool_limit that left the oldest gather out; stderr:\n%s", i, stderr)
		}
		if !strings.Contains(stderr, "; the next run sends them first (the spool holds ") {
			t.Errorf("refused run %d does not say what the spool holds in all:\n%s", i, stderr)
		}
	}
	if n := len(spooled(t, spool)); n != 3*b.ref.metrics {
		t.Errorf("the spool holds %d metrics, want the 3 newest gathers' %d", n, 3*b.ref.metrics)
	}

	// Graphite back on its address: the three newest refused gathers and
	// this run's.
	sink := testbed.NewGraphiteSink(t, refused, testbed.SinkOptions{Keep: testbed.KeepCounts, Marker: graphiteMarker})
	if got := spooledSeconds(t, spool); !slices.Equal(got, stamps[3:]) {
		t.Errorf("the spool holds the gathers of %v, want the 3 newest refused runs', %v", got, stamps[3:])
	}
	nextSecond(t, time.Now())
	stderr, code, _ = b.once(t, b.conf(t, refused, spool, 5*time.Second, fmt.Sprintf("  spool_limit = %d\n", limit)))
	drain(t, sink)
	c := sink.Counts()
	summary := b.checkGathers(t, c, 4)
	var got []int64
	for ts := range c.Lines {
		got = append(got, ts)
	}
	slices.Sort(got)
	if len(got) != 4 || !slices.Equal(got[:3], stamps[3:]) || got[3] <= stamps[5] {
		t.Errorf("Graphite received the gathers of %v, want the 3 newest refused runs', %v, and this run's (%s)", got, stamps[3:], summary)
	}
	if code != 0 || warnLines(stderr) > 0 {
		t.Errorf("the run with Graphite back: exit %d; stderr:\n%s", code, stderr)
	}
	want := fmt.Sprintf("I! [outputs.graphite_statsd] every metric delivered (the spool holds 0 metrics (0 B) in 0 files; of the %d metrics loaded from the spool, %d were delivered)\n", 3*b.ref.metrics, 3*b.ref.metrics)
	if stderr != want {
		t.Errorf("the run with Graphite back says:\n%s\nwant one line:\n%s", stderr, want)
	}
	checkSpoolEmpty(t, spool)
}
