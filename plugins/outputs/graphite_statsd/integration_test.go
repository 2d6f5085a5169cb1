package graphite_statsd

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/contract"
)

// fixtureNow is the golden fixture's metrics stamped with the current
// time (carbon keeps an hour), and the original's lines for it with
// prefix in place of the original's scope.
func fixtureNow(t *testing.T, prefix string) ([]telegraf.Metric, map[string]float64) {
	tab, info := readStat(t), readInfo(t)
	now := time.Now().Truncate(time.Second)
	var metrics []telegraf.Metric
	for _, m := range inputMetrics(tab, info, true) {
		m.SetTime(now)
		metrics = append(metrics, m)
	}
	want := map[string]float64{}
	for path, v := range originalLines(tab, info) {
		want[prefix+strings.TrimPrefix(path, goldenScope)] = v
	}
	return metrics, want
}

// checkCarbon waits until every wanted path has a whisper file, then
// checks the stored values of a sample of them (every non-zero value, the
// statuses and Idle_pct).
func checkCarbon(t *testing.T, c *testbed.Carbon, want map[string]float64) {
	t.Helper()
	waitFor(t, "carbon to create every path", func() bool {
		paths, err := c.Paths()
		if err != nil {
			t.Fatal(err)
		}
		for p := range want {
			if _, ok := slices.BinarySearch(paths, p); !ok {
				return false
			}
		}
		return true
	})
	var sample []string
	for p, v := range want {
		if v != 0 || strings.Contains(p, ".status.") || strings.HasSuffix(p, "Idle_pct") {
			sample = append(sample, p)
		}
	}
	sort.Strings(sample)
	if len(sample) < 10 {
		t.Fatalf("sample of %d paths is too small to mean anything", len(sample))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, p := range sample {
		v := want[p]
		if _, err := c.WaitPoints(ctx, p, func(pt testbed.Point) bool { return pt.Value == v }); err != nil {
			t.Errorf("%s: want %v: %v", p, v, err)
		}
	}
}

func TestCarbonTCP(t *testing.T) {
	c := testbed.NewCarbon(t)
	metrics, want := fixtureNow(t, "hm.tcp")
	o, _ := newOutput(t, []string{c.TCPAddr}, func(o *GraphiteStatsd) {
		o.Prefix = "hm.tcp"
		o.Templates = append([]string(nil), contract.DefaultTemplates...)
	})
	o.Write(metrics) //nolint:errcheck // always nil here
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if n := o.Undelivered(); n != 0 {
		t.Fatalf("Undelivered() = %d", n)
	}
	checkCarbon(t, c, want)
}

func TestCarbonUDP(t *testing.T) {
	c := testbed.NewCarbon(t)
	metrics, want := fixtureNow(t, "hm.udp")
	o, _ := newOutput(t, []string{c.UDPAddr}, func(o *GraphiteStatsd) {
		o.Prefix = "hm.udp"
		o.Transport = "udp"
		o.Templates = append([]string(nil), contract.DefaultTemplates...)
	})
	o.Write(metrics) //nolint:errcheck // always nil here
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	checkCarbon(t, c, want)
}

func TestStatsdGauges(t *testing.T) {
	c := testbed.NewCarbon(t)
	s := testbed.NewStatsd(t, c.TCPAddr)
	o, _ := newOutput(t, []string{s.Addr}, func(o *GraphiteStatsd) {
		o.Prefix = "hm.sd"
		o.Format = "statsd"
		o.Templates = append([]string(nil), contract.DefaultTemplates...)
	})
	tags := map[string]string{"host": "web01", "process_num": "1", "proxy": "app.v1", "sv": "web-1"}
	fields := map[string]any{"scur": uint64(12), "lastsess": int64(-7), "qtime": 2.5, "rate": 1e6}
	want := map[string]float64{
		"stats.gauges.hm.sd.web01.1.app_v1.web-1.scur":     12,
		"stats.gauges.hm.sd.web01.1.app_v1.web-1.lastsess": -7,
		"stats.gauges.hm.sd.web01.1.app_v1.web-1.qtime":    2.5,
		"stats.gauges.hm.sd.web01.1.app_v1.web-1.rate":     1e6,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// statsd may not listen yet when the first packet leaves: send until
	// every gauge shows its value. Each write sends the metric twice: a
	// negative value sent without its ":0|g" reset would add up to -14.
	for path, v := range want {
		for {
			m := metric.New("haproxy", tags, fields, time.Now())
			o.Write([]telegraf.Metric{m, m.Copy()}) //nolint:errcheck // always nil here
			wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := c.WaitPoints(wctx, path, func(p testbed.Point) bool { return p.Value == v })
			wcancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s never showed %v: %v", path, v, err)
			}
		}
	}
}
