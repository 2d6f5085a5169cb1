package haproxy

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// waitFields gathers h until the metric name with tags has fields for
// which cond holds, and returns them; it fails t, with the last fields
// seen, when ctx ends first (what says what was awaited).
func waitFields(ctx context.Context, t *testing.T, h *HAProxy, name string, tags map[string]string, what string, cond func(f map[string]any) bool) map[string]any {
	t.Helper()
	return waitMetric(ctx, t, h, name, tags, what, func(m telegraf.Metric) bool { return cond(m.Fields()) }).Fields()
}

// waitMetric is waitFields for a condition on the whole metric.
func waitMetric(ctx context.Context, t *testing.T, h *HAProxy, name string, tags map[string]string, what string, cond func(m telegraf.Metric) bool) telegraf.Metric {
	t.Helper()
	var last telegraf.Metric
	for ctx.Err() == nil {
		ms, errs := gather(t, h)
		if len(errs) > 0 {
			t.Fatalf("%s: errors: %v", what, errs)
		}
		if m := find(ms, name, tags); m != nil {
			last = m
			if cond(m) {
				return m
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if last == nil {
		t.Fatalf("%s: no %s %v", what, name, tags)
	}
	t.Fatalf("%s: %s %v never said so; last %v %v", what, name, tags, last.Tags(), last.Fields())
	return nil
}

// recordAnswer writes hp's answer to command into testdata (the file
// haproxy-<version><suffix>) under -record; otherwise it checks that the
// answer and the recording are alike by shape, which says what stays of
// an answer from one run to the next.
func recordAnswer(ctx context.Context, t *testing.T, hp *testbed.HAProxy, command, suffix string, shape func(string) string) {
	t.Helper()
	out, err := hp.Command(ctx, command)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "haproxy-"+recordingVersion(hp.Version)+suffix)
	if *record {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("HAProxy %s has no recording of %s: run this test with -record (%v)", hp.Version, command, err)
	}
	if g, w := shape(out), shape(string(want)); g != w {
		t.Errorf("HAProxy %s's %s differs from %s:\n%s\nrecorded:\n%s", hp.Version, command, path, g, w)
	}
}
