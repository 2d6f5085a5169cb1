package graphite_statsd

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/serializers/graphite"

	"github.com/hap-monitor/hap-monitor/plugins/common/contract"
)

// newTestOutput returns an initialised output with opts applied.
func newTestOutput(t testing.TB, opts func(*GraphiteStatsd)) *GraphiteStatsd {
	t.Helper()
	o := &GraphiteStatsd{Templates: append([]string(nil), contract.DefaultTemplates...)}
	if opts != nil {
		opts(o)
	}
	if err := o.Init(); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return o
}

// serialize returns the units the output's serializer makes of metrics.
func serialize(o *GraphiteStatsd, metrics ...telegraf.Metric) []string {
	var buf []byte
	var ends []int
	for _, m := range metrics {
		buf = o.ser.appendMetric(buf, m, &ends)
	}
	var out []string
	start := 0
	for _, e := range ends {
		out = append(out, string(buf[start:e]))
		start = e
	}
	if start != len(buf) {
		out = append(out, "UNTERMINATED:"+string(buf[start:]))
	}
	return out
}

// telegrafLines is what Telegraf's own serializer makes of m, one line each.
func telegrafLines(t testing.TB, o *GraphiteStatsd, m telegraf.Metric) []string {
	t.Helper()
	s := &graphite.Serializer{
		Prefix:          o.Prefix,
		Template:        o.Template,
		StrictRegex:     o.GraphiteStrictRegex,
		TagSupport:      o.GraphiteTagSupport,
		TagSanitizeMode: o.GraphiteTagSanitizeMode,
		Separator:       o.GraphiteSeparator,
		Templates:       o.Templates,
	}
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	b, err := s.Serialize(m)
	if err != nil {
		t.Fatal(err)
	}
	return splitLines(string(b))
}

func splitLines(s string) []string {
	var out []string
	for s != "" {
		i := strings.IndexByte(s, '\n')
		out = append(out, s[:i+1])
		s = s[i+1:]
	}
	return out
}

// sameAsTelegraf fails the test when the output's lines for m are not
// Telegraf's, as sets (Telegraf writes fields in map order).
func sameAsTelegraf(t testing.TB, o *GraphiteStatsd, m telegraf.Metric) {
	t.Helper()
	want := telegrafLines(t, o, m)
	got := serialize(o, m)
	// A second pass goes through the caches.
	got2 := serialize(o, m)
	slices.Sort(want)
	slices.Sort(got)
	slices.Sort(got2)
	if !slices.Equal(got, want) || !slices.Equal(got2, want) {
		t.Fatalf("metric %v\n got: %q\ncached: %q\nwant: %q", m, got, got2, want)
	}
}

var ts = time.Unix(1700000000, 123456789)

func TestSerializerMatchesTelegraf(t *testing.T) {
	fields := map[string]any{
		"scur": uint64(12), "lastsess": int64(-1), "qtime": 0.25, "big": 1e21,
		"neg": -3.5, "on": true, "off": false, "status": "UP", "nan": math.NaN(),
		"inf": math.Inf(1), "status.UP": uint64(1), "http_response.2xx": uint64(7),
		"value": 42.0, "": uint64(3), ".dot.": uint64(4), "a/b c": int64(5),
	}
	tagSets := []map[string]string{
		{"host": "web01", "server": "/run/haproxy.sock", "proxy": "app.v1", "sv": "web-1", "type": "server", "process_num": "1"},
		{"host": "web01", "pxname": "www.example fe", "svname": "FRONTEND", "process_num": "2"},
		{"host": "h", "proxy": "FIELDNAME", "sv": "a..b\\c", "process_num": "1"},
		{"host": "h", "proxy": "é/ü@x*y", "sv": "\xc3\\\xa9", "process_num": "1"},
		{"host": "h", "proxy": "", "sv": ".", "process_num": ""},
		{"host": "h.example.org", "region": "eu west"},
		{},
	}
	configs := map[string]func(*GraphiteStatsd){
		"defaults": nil,
		"prefix":   func(o *GraphiteStatsd) { o.Prefix = "my.system.stats.haproxy" },
		"template": func(o *GraphiteStatsd) { o.Templates = nil; o.Template = "measurement.tags.field" },
		"no field": func(o *GraphiteStatsd) { o.Templates = []string{"host.tags"} },
		"glob": func(o *GraphiteStatsd) {
			o.Templates = []string{"hap* tags.measurement.field.host", "process_num.field"}
		},
		"tag support":      func(o *GraphiteStatsd) { o.GraphiteTagSupport = true },
		"compatible tags":  func(o *GraphiteStatsd) { o.GraphiteTagSupport = true; o.GraphiteTagSanitizeMode = "compatible" },
		"custom regexp":    func(o *GraphiteStatsd) { o.GraphiteStrictRegex = `[^a-z.]` },
		"separator + tags": func(o *GraphiteStatsd) { o.GraphiteTagSupport = true; o.GraphiteSeparator = "_"; o.Prefix = "p" },
	}
	for name, opts := range configs {
		t.Run(name, func(t *testing.T) {
			o := newTestOutput(t, opts)
			for _, measurement := range []string{"haproxy", "haproxy_info", "cpu", "a.b c"} {
				for _, tags := range tagSets {
					sameAsTelegraf(t, o, metric.New(measurement, tags, fields, ts))
				}
			}
		})
	}
}

func TestSanitizeMatchesTelegrafOnEveryRune(t *testing.T) {
	o := newTestOutput(t, func(o *GraphiteStatsd) { o.Templates = []string{"proxy.field"} })
	var b strings.Builder
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if r == '\n' {
			continue
		}
		b.WriteRune(r)
		if b.Len() > 4000 || r == utf8.MaxRune {
			sameAsTelegraf(t, o, metric.New("m", map[string]string{"proxy": b.String()}, map[string]any{"f": 1.0}, ts))
			b.Reset()
		}
	}
}

func FuzzSerializerMatchesTelegraf(f *testing.F) {
	f.Add("haproxy", "app.v1", "web 1/x", "hrsp_2xx", uint8(0), 1.5, int64(-2), "web01", "1")
	f.Add("haproxy_info", "", "", "Idle_pct", uint8(1), 0.0, int64(0), "h.example", "")
	f.Add("x..y", "FIELDNAME", "\xc3\\\xa9", "value", uint8(2), -1e21, int64(7), "", "2")
	o := newTestOutput(f, nil)
	tagged := newTestOutput(f, func(o *GraphiteStatsd) { o.GraphiteTagSupport = true })
	prefixed := newTestOutput(f, func(o *GraphiteStatsd) { o.Prefix = "p.q"; o.Templates = []string{"*x* host.field.tags"} })
	f.Fuzz(func(t *testing.T, name, proxy, sv, field string, kind uint8, fv float64, iv int64, host, pnum string) {
		if name == "" {
			return
		}
		tags := map[string]string{"proxy": proxy, "sv": sv, "host": host, "process_num": pnum}
		var v any
		switch kind % 5 {
		case 0:
			v = fv
		case 1:
			v = iv
		case 2:
			v = uint64(iv)
		case 3:
			v = iv%2 == 0
		default:
			v = sv
		}
		m := metric.New(name, tags, map[string]any{field: v, "other": fv}, ts)
		sameAsTelegraf(t, o, m)
		sameAsTelegraf(t, tagged, m)
		sameAsTelegraf(t, prefixed, m)
	})
}

func TestStatsdUnits(t *testing.T) {
	o := newTestOutput(t, func(o *GraphiteStatsd) { o.Format = "statsd"; o.Prefix = "pre" })
	m := metric.New("haproxy", map[string]string{"host": "h", "proxy": "app.v1", "sv": "web-1", "process_num": "1"},
		map[string]any{"scur": uint64(3), "lastsess": int64(-1), "rate": 1000000.0, "status": "UP", "nan": math.NaN(), "ok": true}, ts)
	got := serialize(o, m)
	slices.Sort(got)
	want := []string{
		"pre.h.1.app_v1.web-1.lastsess:0|g\npre.h.1.app_v1.web-1.lastsess:-1|g\n",
		"pre.h.1.app_v1.web-1.ok:1|g\n",
		"pre.h.1.app_v1.web-1.rate:1000000|g\n",
		"pre.h.1.app_v1.web-1.scur:3|g\n",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}

	o = newTestOutput(t, func(o *GraphiteStatsd) {
		o.Format = "statsd"
		o.StatsdTags = true
		o.Templates = []string{"measurement.field"}
	})
	m = metric.New("cpu", map[string]string{"host": "h", "a,b": "c|d e"}, map[string]any{"idle": -0.5}, ts)
	got = serialize(o, m)
	want = []string{"cpu.idle:0|g|#a_b:c_d_e,host:h\ncpu.idle:-0.5|g|#a_b:c_d_e,host:h\n"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}

	// Names holding statsd's separators keep one well-formed gauge each,
	// with the default sanitising and with a regexp that lets them through.
	for _, regexp := range []string{"", `[^a-z0-9.:|@]`} {
		o = newTestOutput(t, func(o *GraphiteStatsd) {
			o.Format = "statsd"
			o.Templates = []string{"proxy.sv.field"}
			o.GraphiteStrictRegex = regexp
		})
		m = metric.New("haproxy", map[string]string{"proxy": "app", "sv": "web:3|x@y"}, map[string]any{"scur": int64(-2)}, ts)
		got = serialize(o, m)
		want = []string{"app.web_3_x_y.scur:0|g\napp.web_3_x_y.scur:-2|g\n"}
		if regexp == "" {
			want = []string{"app.web_3_x-y.scur:0|g\napp.web_3_x-y.scur:-2|g\n"}
		}
		if !slices.Equal(got, want) {
			t.Errorf("regexp %q: got %q\nwant %q", regexp, got, want)
		}
	}
}

func TestLongLinesSkipped(t *testing.T) {
	o := newTestOutput(t, func(o *GraphiteStatsd) { o.Templates = []string{"proxy.field"} })
	long := strings.Repeat("x", maxLineTCP)
	got := serialize(o, metric.New("m", map[string]string{"proxy": long}, map[string]any{"f": 1.0}, ts),
		metric.New("m", map[string]string{"proxy": "short"}, map[string]any{"f": 2.0}, ts))
	if want := []string{"short.f 2 1700000000\n"}; !slices.Equal(got, want) {
		t.Fatalf("got %d lines %.80q, want %q", len(got), got, want)
	}
	if o.ser.skipped != 1 {
		t.Fatalf("skipped = %d, want 1", o.ser.skipped)
	}
}

// TestSerializerCountsWhatItSkips: the serializer, built from its own
// options, counts the units it leaves out until asked.
func TestSerializerCountsWhatItSkips(t *testing.T) {
	s, err := newSerializer(serializerOptions{Format: "graphite", Prefix: "p", Templates: contract.DefaultTemplates, MaxUnit: 40})
	if err != nil {
		t.Fatal(err)
	}
	tm := time.Unix(1700000000, 0)
	m := metric.New("haproxy", map[string]string{"host": "h", "proxy": strings.Repeat("x", 50), "sv": "s"},
		map[string]any{"scur": uint64(1), "status": "UP", "rate": math.NaN()}, tm)
	short := metric.New("haproxy_info", map[string]string{"host": "h"}, map[string]any{"Idle_pct": int64(99)}, tm)
	out := string(s.appendMetric(s.appendMetric(nil, m, nil), short, nil))
	if out != "p.h.Idle_pct 99 1700000000\n" {
		t.Errorf("units %q, want the short one only", out)
	}
	c := s.takeSkipped()
	if c.long != 1 || !strings.HasPrefix(c.example, "p.h."+strings.Repeat("x", 50)) || c.unusable != 2 {
		t.Errorf("skipped %+v, want 1 long line (its path as example) and 2 unusable values", c)
	}
	if c := s.takeSkipped(); c != (skippedCounts{}) {
		t.Errorf("second take %+v, want nothing", c)
	}
}
