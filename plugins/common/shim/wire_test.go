package shim

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

func TestEncoderSkipsOnlyTheBadMetric(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	metrics := []telegraf.Metric{
		metric.New("haproxy", map[string]string{"proxy": "a b", "sv": "s1"}, map[string]any{"scur": uint64(3)}, ts),
		metric.New("haproxy", map[string]string{"proxy": "evil\nhaproxy"}, map[string]any{"scur": uint64(1)}, ts),
		metric.New("haproxy", map[string]string{"proxy": "nan"}, map[string]any{"x": math.NaN()}, ts),
		info(ts),
	}
	var out bytes.Buffer
	enc := NewEncoder(&out)
	var errs int
	for _, m := range metrics {
		if err := enc.Encode(m); err != nil {
			errs++
		}
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "haproxy,proxy=a\\ b,sv=s1 scur=3u 1700000000000000000\n" +
		"haproxy_info Idle_pct=99i,version=\"2.6.12\" 1700000000000000000\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	if errs != 2 {
		t.Errorf("got %d errors, want 2 (newline in a tag, no usable field)", errs)
	}
}

// info builds a metric whose fields keep their order (a map's would not).
func info(ts time.Time) telegraf.Metric {
	m := metric.New("haproxy_info", nil, map[string]any{"Idle_pct": int64(99)}, ts)
	m.AddField("version", "2.6.12")
	m.AddField("bad", math.Inf(1))
	return m
}
