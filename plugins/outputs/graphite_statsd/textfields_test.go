package graphite_statsd

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/hap-monitor/hap-monitor/plugins/common/lineproto"
)

// textMetric is a metric.New metric that also hands its fields over as
// text, as the haproxy input's rows do.
type textMetric struct {
	telegraf.Metric
	raw  []lineproto.TextField
	keys []string
	text []byte
}

func (m *textMetric) TextFields() ([]lineproto.TextField, []string, []byte, bool) {
	return m.raw, m.keys, m.text, true
}

// withText returns m's fields as text too, in FieldList's order.
func withText(m telegraf.Metric) *textMetric {
	tm := &textMetric{Metric: m}
	for _, f := range m.FieldList() {
		var kind byte
		var v []byte
		switch x := f.Value.(type) {
		case uint64:
			kind, v = lineproto.KindUint, strconv.AppendUint(nil, x, 10)
		case int64:
			kind, v = lineproto.KindInt, strconv.AppendInt(nil, x, 10)
		case string:
			kind, v = lineproto.KindString, []byte(x)
		default:
			panic("no text for a " + f.Key)
		}
		tm.keys = append(tm.keys, f.Key)
		tm.raw = append(tm.raw, lineproto.TextField{Off: uint32(len(tm.text)), Len: uint32(len(v)), Key: uint16(len(tm.keys) - 1), Kind: kind})
		tm.text = append(tm.text, v...)
	}
	return tm
}

// TestTextFieldsSerializeAsTheirValues: a metric whose fields come as text
// gives the units its values give, whatever the options, paths and
// lengths.
func TestTextFieldsSerializeAsTheirValues(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	ordered := func(name string, tags map[string]string, kv ...any) telegraf.Metric {
		m := metric.New(name, tags, map[string]any{}, ts)
		for i := 0; i < len(kv); i += 2 {
			m.AddField(kv[i].(string), kv[i+1])
		}
		return m
	}
	tags := map[string]string{"host": "lb1", "process_num": "1", "proxy": "app.v1", "sv": "web/1", "server": "/run/h.sock", "type": "server"}
	long := strings.Repeat("x", 20000)
	metrics := []telegraf.Metric{
		ordered("haproxy", tags, "scur", uint64(3), "lastsess", int64(-1), "status", "UP", "status.UP", int64(1), "http_response.2xx", uint64(18446744073709551615)),
		ordered("haproxy", tags, "value", uint64(7), ".lead", uint64(1), "trail.", int64(-2), "é", uint64(4), "", uint64(5), "a..b", uint64(6)),
		ordered("haproxy", map[string]string{"host": "lb1", "proxy": long}, "scur", uint64(1), "qcur", int64(-3)),
		ordered("haproxy_info", map[string]string{"host": "lb.1", "process_num": "2"}, "Idle_pct", int64(99), "version", "2.6"),
		ordered("other", map[string]string{"host": "h", "zone": "a b"}, "x", uint64(1)),
	}
	options := map[string]func(*GraphiteStatsd){
		"default":          nil,
		"prefix with dots": func(o *GraphiteStatsd) { o.Prefix = "my.scope." },
		"template":         func(o *GraphiteStatsd) { o.Templates = nil; o.Template = "measurement.field.tags" },
		"field first":      func(o *GraphiteStatsd) { o.Templates = nil; o.Template = "field.host.tags" },
		"no field":         func(o *GraphiteStatsd) { o.Templates = nil; o.Template = "host.measurement" },
		"statsd":           func(o *GraphiteStatsd) { o.Format = formatStatsd },
		"statsd tags":      func(o *GraphiteStatsd) { o.Format = formatStatsd; o.StatsdTags = true },
		"udp packet limit": func(o *GraphiteStatsd) { o.Transport = transportUDP; o.MaxPacketSize = 100 },
		"tag support":      func(o *GraphiteStatsd) { o.GraphiteTagSupport = true },
	}
	for name, opts := range options {
		plain, text := newTestOutput(t, opts), newTestOutput(t, opts)
		for _, m := range metrics {
			want := serialize(plain, m)
			got := serialize(text, withText(m.Copy()))
			if name == "tag support" { // Telegraf's serializer: fields in map order
				slices.Sort(want)
				slices.Sort(got)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s, %s: text fields give\n%q\nvalues give\n%q", name, m.Name(), got, want)
			}
		}
		if plain.ser.skipped != text.ser.skipped || plain.ser.unusable != text.ser.unusable {
			t.Errorf("%s: text fields skipped %d and left %d unusable, values %d and %d", name,
				text.ser.skipped, text.ser.unusable, plain.ser.skipped, plain.ser.unusable)
		}
	}
}
