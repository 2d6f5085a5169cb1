package haproxy

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
)

// loggedPlugin is newPlugin with the plugin's log lines kept in a buffer.
func loggedPlugin(t *testing.T, h *HAProxy) (*HAProxy, *testbed.SyncBuffer) {
	t.Helper()
	logs := &testbed.SyncBuffer{}
	h.Log = logger.New(logger.NewSink(logs, telegraf.Debug), "inputs.haproxy")
	return newPlugin(t, h), logs
}

// linesWith returns the log lines starting with level that hold every
// one of words.
func linesWith(logs, level string, words ...string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if !strings.HasPrefix(l, level) {
			continue
		}
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// TestCollisionTwoInstances gathers two real HAProxy instances with the
// same proxy names in one section: every gather warns once, naming both
// sockets and the fix, and every metric is still emitted.
func TestCollisionTwoInstances(t *testing.T) {
	a := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	b := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	h, logs := loggedPlugin(t, &HAProxy{Servers: []string{a.AdminSocket, b.AdminSocket}})
	for gather := 1; gather <= 2; gather++ {
		ms, errs := gatherOnce(t, h)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		checkScenario(t, perServer(ms, a.AdminSocket), a.AdminSocket)
		checkScenario(t, perServer(ms, b.AdminSocket), b.AdminSocket)
		warns := linesWith(logs.String(), "W! [inputs.haproxy]", a.AdminSocket, b.AdminSocket,
			fmt.Sprintf("pids %d and %d", a.PID, b.PID), "instance", "templates")
		if len(warns) != gather {
			t.Fatalf("after gather %d: %d warnings naming both sockets, want %d; logs:\n%s", gather, len(warns), gather, logs)
		}
		if n := len(linesWith(logs.String(), "W! ")); n != gather {
			t.Errorf("after gather %d: %d warnings in all, want %d", gather, n, gather)
		}
	}
	t.Log(linesWith(logs.String(), "W! ")[0])

	// Sections of their own: no warning (each gathers alone).
	for _, s := range []string{a.AdminSocket, b.AdminSocket} {
		h, logs := loggedPlugin(t, &HAProxy{Servers: []string{s}})
		if _, errs := gatherOnce(t, h); len(errs) > 0 {
			t.Fatal(errs)
		}
		if w := linesWith(logs.String(), "W! "); len(w) > 0 {
			t.Errorf("one socket: %v", w)
		}
	}
}

// TestCollisionSameProcess gathers two sockets of one HAProxy: the same
// data twice, said once at info level, never as a warning.
func TestCollisionSameProcess(t *testing.T) {
	hp := testbed.NewHAProxy(t, testbed.HAProxyOptions{MasterWorker: true})
	tests := []struct {
		name    string
		servers []string
	}{
		{"admin and user socket", []string{hp.AdminSocket, hp.UserSocket}},
		{"unix and tcp socket", []string{hp.AdminSocket, "tcp://" + hp.TCPAddr}},
		{"master CLI and the worker's socket", []string{"master:" + hp.MasterSocket, hp.UserSocket}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, logs := loggedPlugin(t, &HAProxy{Servers: tt.servers})
			for range 2 {
				if _, errs := gatherOnce(t, h); len(errs) > 0 {
					t.Fatal(errs)
				}
			}
			if w := linesWith(logs.String(), "W! "); len(w) > 0 {
				t.Errorf("warnings: %v", w)
			}
			info := linesWith(logs.String(), "I! [inputs.haproxy]", "same HAProxy process")
			if len(info) != 1 || !strings.Contains(info[0], "list only one") {
				t.Errorf("info lines %q, want one", info)
			}
		})
	}
}

// TestCollisionPages: two stats pages do not say which process they are;
// with the same series they are warned about, with both cases named.
func TestCollisionPages(t *testing.T) {
	hp := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	h, logs := loggedPlugin(t, &HAProxy{Servers: []string{hp.StatsURL, hp.AdminSocket}})
	if _, errs := gatherOnce(t, h); len(errs) > 0 {
		t.Fatal(errs)
	}
	w := linesWith(logs.String(), "W! [inputs.haproxy]", hp.StatsURL, hp.AdminSocket, "If they are one HAProxy, list it once")
	if len(w) != 1 {
		t.Errorf("warnings %q, want one naming the page and the socket", linesWith(logs.String(), "W! "))
	}
}

func gatherOnce(t *testing.T, h *HAProxy) ([]telegraf.Metric, []error) {
	t.Helper()
	acc := &shim.Accumulator{}
	if err := h.Gather(acc); err != nil {
		t.Fatal(err)
	}
	return acc.Drain()
}

func perServer(ms []telegraf.Metric, server string) []telegraf.Metric {
	var out []telegraf.Metric
	for _, m := range ms {
		if s, _ := m.GetTag("server"); s == server {
			out = append(out, m)
		}
	}
	return out
}

// BenchmarkCollisionTracking measures what keying every metric costs: the
// recorded 1000x10 answer read as one of two sockets of a gather
// (tracked) and as the only one, as BenchmarkParseStat reads it.
func BenchmarkCollisionTracking(b *testing.B) {
	data := readLarge(b)
	h := newPlugin(b, &HAProxy{Servers: []string{testSocketTag}})
	for _, tracked := range []bool{false, true} {
		b.Run(fmt.Sprintf("tracked=%v", tracked), func(b *testing.B) {
			acc := &shim.Accumulator{}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				var a telegraf.Accumulator = acc
				var c *collisions
				if tracked {
					c = newCollisions()
					c.source("other", 0, 0)
					a = c.source(testSocketTag, 0, 0).wrap(acc)
				}
				g := &serverGather{h: h, ep: endpoint{kind: kindUnix, tag: testSocketTag}, acc: a, ts: time.Now()}
				if err := g.readSocket(newLineReader(bytes.NewReader(data))); err != nil {
					b.Fatal(err)
				}
				c.report(h)
				if ms, _ := acc.Drain(); len(ms) != largeRows+1 {
					b.Fatalf("%d metrics, want %d", len(ms), largeRows+1)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/largeRows, "ns/row")
		})
	}
}

// BenchmarkTrackSeries measures keying alone: the 12,005 metrics of the
// recorded 1000x10 answer passed through a tracking accumulator.
func BenchmarkTrackSeries(b *testing.B) {
	data := readLarge(b)
	h := newPlugin(b, &HAProxy{Servers: []string{testSocketTag}})
	acc := &shim.Accumulator{}
	g := &serverGather{h: h, ep: endpoint{kind: kindUnix, tag: testSocketTag}, acc: acc, ts: time.Now()}
	if err := g.readSocket(newLineReader(bytes.NewReader(data))); err != nil {
		b.Fatal(err)
	}
	ms, _ := acc.Drain()
	b.ReportAllocs()
	for b.Loop() {
		c := newCollisions()
		c.source("other", 0, 0)
		a := c.source(testSocketTag, 0, 0).wrap(discard{})
		for _, m := range ms {
			a.AddMetric(m)
		}
		c.report(h)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(ms)), "ns/metric")
}

// discard is an accumulator that drops what it is given.
type discard struct{ telegraf.Accumulator }

func (discard) AddMetric(telegraf.Metric) {}

func TestSeriesKeySet(t *testing.T) {
	for i, tag := range seriesKeyTags {
		var k seriesKey
		k.set(tag, "v")
		if !k.has[i] || k.vals[i] != "v" {
			t.Errorf("set(%q) filled %v", tag, k.has)
		}
	}
	var k seriesKey
	k.set("server", "x")
	if k.has != [maxSeriesKeyTags]bool{} {
		t.Errorf("set(server) filled %v", k.has)
	}
}

// TestSeriesKeyTagsAreTheOutputsTemplates: the check keys series by what
// the output's default templates put in a path.
func TestSeriesKeyTagsAreTheOutputsTemplates(t *testing.T) {
	want := []string{"process_num", "worker", "proxy", "pxname", "sv", "svname", "table", "file", "resolvers", "nameserver", "peers", "peer"}
	if !slices.Equal(seriesKeyTags, want) {
		t.Errorf("seriesKeyTags = %q, want %q", seriesKeyTags, want)
	}
	if len(seriesKeyTags) > maxSeriesKeyTags {
		t.Errorf("%d tags in the default templates' paths, more than maxSeriesKeyTags (%d)", len(seriesKeyTags), maxSeriesKeyTags)
	}
}
