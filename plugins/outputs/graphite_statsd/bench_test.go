package graphite_statsd

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/contract"
)

// numericColumns are 62 numeric show stat columns of HAProxy 2.6.
var numericColumns = []string{"qcur", "qmax", "scur", "smax", "slim", "stot", "bin", "bout", "dreq", "dresp",
	"ereq", "econ", "eresp", "wretr", "wredis", "weight", "act", "bck", "chkfail", "chkdown", "lastchg",
	"downtime", "qlimit", "pid", "iid", "sid", "throttle", "lbtot", "rate", "rate_lim", "rate_max",
	"check_code", "check_duration", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other",
	"hanafail", "req_rate", "req_rate_max", "req_tot", "cli_abrt", "srv_abrt", "lastsess", "qtime", "ctime",
	"rtime", "ttime", "check_rise", "check_fall", "check_health", "conn_rate", "conn_rate_max", "conn_tot",
	"qtime_max", "ctime_max", "rtime_max", "ttime_max", "idle_conn_cur", "used_conn_cur"}

// haproxyMetrics builds the rows of a backends x servers HAProxy as the
// input emits them: per backend, its server rows, its BACKEND row and a
// FRONTEND row (12,000 rows for 1000 x 10).
func haproxyMetrics(backends, servers int, tm time.Time) []telegraf.Metric {
	var out []telegraf.Metric
	row := func(proxy, sv, typ string, seed int) telegraf.Metric {
		fields := make(map[string]any, len(numericColumns)+1)
		for i, c := range numericColumns {
			if c == "lastsess" {
				fields[c] = int64(seed%7) - 1
				continue
			}
			fields[c] = uint64(seed*31 + i*1009)
		}
		fields["status"] = "UP"
		return metric.New("haproxy", map[string]string{
			"host": "lb01", "server": "/run/haproxy/admin.sock", "process_num": "1",
			"pxname": proxy, "svname": sv, "type": typ,
		}, fields, tm)
	}
	for b := 0; b < backends; b++ {
		proxy := fmt.Sprintf("be_%04d", b)
		for s := 0; s < servers; s++ {
			out = append(out, row(proxy, fmt.Sprintf("srv_%02d", s), "server", b*servers+s))
		}
		out = append(out, row(proxy, "BACKEND", "backend", b), row(proxy, "FRONTEND", "frontend", b+7))
	}
	return out
}

// BenchmarkSend1000x10 serialises and sends the 744,000 lines of a
// 1000 backends x 10 servers HAProxy (12,000 metrics of 62 numbers) to a
// TCP sink on loopback, per op.
func BenchmarkSend1000x10(b *testing.B) {
	sink := testbed.NewGraphiteSink(b, "127.0.0.1:0", testbed.SinkOptions{Keep: testbed.KeepTotals})
	o := &GraphiteStatsd{
		Servers:           []string{sink.Addr},
		Templates:         append([]string(nil), contract.DefaultTemplates...),
		Prefix:            "my.system.stats.haproxy",
		MetricBufferLimit: 20000,
	}
	if err := o.Init(); err != nil {
		b.Fatal(err)
	}
	if err := o.Connect(); err != nil {
		b.Fatal(err)
	}
	metrics := haproxyMetrics(1000, 10, time.Unix(1700000000, 0))
	const linesPerOp = 12000 * 62
	if len(metrics) != 12000 {
		b.Fatalf("%d metrics, want 12000", len(metrics))
	}
	o.Write(metrics) //nolint:errcheck // warm the caches
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		o.Write(metrics) //nolint:errcheck // delivery is checked below
	}
	if err := o.Close(); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&after)
	want := int64(b.N+1) * linesPerOp
	deadline := time.Now().Add(10 * time.Second)
	for n, _ := sink.Total(); n < want && time.Now().Before(deadline); n, _ = sink.Total() {
		time.Sleep(time.Millisecond)
	}
	got, sent := sink.Total()
	if got != want {
		b.Fatalf("sink counted %d lines, want %d", got, want)
	}
	if n := o.Undelivered(); n != 0 {
		b.Fatalf("Undelivered() = %d", n)
	}
	lines := float64(b.N) * linesPerOp
	b.ReportMetric(lines/elapsed.Seconds(), "lines/s")
	b.ReportMetric(float64(sent)*float64(b.N)/float64(b.N+1)/elapsed.Seconds(), "bytes/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/lines, "allocs/line")
}

// BenchmarkSerialize measures serialisation alone (no socket).
func BenchmarkSerialize(b *testing.B) {
	o := newTestOutput(b, func(o *GraphiteStatsd) { o.Prefix = "my.system.stats.haproxy" })
	metrics := haproxyMetrics(1000, 10, time.Unix(1700000000, 0))
	benchAppendMetrics(b, o.ser, metrics)
}

// BenchmarkSerializeText measures serialisation alone of metrics whose
// fields come as text, as the haproxy input's rows do: every row's keys
// index one table of field names, as a CSV header's columns.
func BenchmarkSerializeText(b *testing.B) {
	o := newTestOutput(b, func(o *GraphiteStatsd) { o.Prefix = "my.system.stats.haproxy" })
	var table []string
	column := map[string]uint16{}
	var metrics []telegraf.Metric
	var texts []*textMetric
	for _, m := range haproxyMetrics(1000, 10, time.Unix(1700000000, 0)) {
		tm := withText(m)
		for i, f := range tm.raw {
			k := tm.keys[f.Key]
			c, ok := column[k]
			if !ok {
				c = uint16(len(table))
				column[k] = c
				table = append(table, k)
			}
			tm.raw[i].Key = c
		}
		metrics, texts = append(metrics, tm), append(texts, tm)
	}
	for _, tm := range texts {
		tm.keys = table
	}
	benchAppendMetrics(b, o.ser, metrics)
}

// benchAppendMetrics serialises the 1000x10 metrics (744,000 lines) once
// to warm ser up, then once per iteration.
func benchAppendMetrics(b *testing.B, ser *serializer, metrics []telegraf.Metric) {
	var buf []byte
	for _, m := range metrics {
		buf = ser.appendMetric(buf[:0], m, nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, m := range metrics {
			buf = ser.appendMetric(buf[:0], m, nil)
		}
	}
	b.ReportMetric(float64(b.N)*12000*62/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkTelegrafSerialize is the same work with Telegraf's serializer,
// for comparison.
func BenchmarkTelegrafSerialize(b *testing.B) {
	o := newTestOutput(b, func(o *GraphiteStatsd) { o.Prefix = "my.system.stats.haproxy" })
	metrics := haproxyMetrics(1000, 10, time.Unix(1700000000, 0))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, m := range metrics {
			if _, err := o.ser.telegraf.Serialize(m); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)*12000*62/b.Elapsed().Seconds(), "lines/s")
}
