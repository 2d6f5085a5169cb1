package graphite_statsd

import (
	"slices"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

// TestDefaultTemplatesWorkers: through a master CLI, the current worker's
// metrics carry no worker tag and keep a stats socket's paths; an old
// worker's carry worker=old1 and get a level of their own after
// process_num; haproxy_master has one path per field. Graphite and
// statsd alike, the same as Telegraf's serializer.
func TestDefaultTemplatesWorkers(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	tags := func(extra ...string) map[string]string {
		m := map[string]string{"host": "lb1", "server": "/run/haproxy/admin.sock", "process_num": "1"}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	row := func(extra ...string) telegraf.Metric {
		kv := append([]string{"proxy", "db_tcp-1", "sv", "FRONTEND", "type", "frontend"}, extra...)
		return metric.New("haproxy", tags(kv...), map[string]any{"scur": uint64(1)}, ts)
	}
	metrics := []telegraf.Metric{
		row(),
		row("worker", "old1"),
		metric.New("haproxy_info", tags(), map[string]any{"Pid": int64(8600)}, ts),
		metric.New("haproxy_info", tags("worker", "old1"), map[string]any{"Pid": int64(8529)}, ts),
		metric.New("haproxy_table", tags("table", "sticky", "type", "ip"), map[string]any{"used": int64(3)}, ts),
		metric.New("haproxy_table", tags("table", "sticky", "type", "ip", "worker", "old2"), map[string]any{"used": int64(0)}, ts),
		metric.New("haproxy_master", map[string]string{"host": "lb1", "server": "/run/haproxy-master.sock"},
			map[string]any{"reloads": int64(2), "failed_reloads": int64(0)}, ts),
	}
	graphiteWant := []string{
		"p.lb1.1.db_tcp-1.FRONTEND.scur 1 1700000000\n",
		"p.lb1.1.old1.db_tcp-1.FRONTEND.scur 1 1700000000\n",
		"p.lb1.1.Pid 8600 1700000000\n",
		"p.lb1.1.old1.Pid 8529 1700000000\n",
		"p.lb1.1.haproxy_table.sticky.used 3 1700000000\n",
		"p.lb1.1.old2.haproxy_table.sticky.used 0 1700000000\n",
		"p.lb1.haproxy_master.failed_reloads 0 1700000000\n",
		"p.lb1.haproxy_master.reloads 2 1700000000\n",
	}
	o := newTestOutput(t, func(o *GraphiteStatsd) { o.Prefix = "p" })
	var got, fromTelegraf []string
	for _, m := range metrics {
		got = append(got, serialize(o, m)...)
		fromTelegraf = append(fromTelegraf, telegrafLines(t, o, m)...)
	}
	slices.Sort(got)
	slices.Sort(fromTelegraf)
	want := slices.Sorted(slices.Values(graphiteWant))
	if !slices.Equal(got, want) {
		t.Errorf("graphite lines\n%q\nwant\n%q", got, want)
	}
	if !slices.Equal(fromTelegraf, want) {
		t.Errorf("Telegraf's serializer\n%q\nwant\n%q", fromTelegraf, want)
	}

	s := newTestOutput(t, func(o *GraphiteStatsd) { o.Prefix = "p"; o.Format = formatStatsd })
	got = nil
	for _, m := range metrics[:2] {
		got = append(got, serialize(s, m)...)
	}
	if want := []string{"p.lb1.1.db_tcp-1.FRONTEND.scur:1|g\n", "p.lb1.1.old1.db_tcp-1.FRONTEND.scur:1|g\n"}; !slices.Equal(got, want) {
		t.Errorf("statsd %q, want %q", got, want)
	}
}
