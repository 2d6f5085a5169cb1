package lineproto

import (
	"bytes"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

// textMetric is a metric.New metric that also hands its fields over as
// text, as the haproxy input's do.
type textMetric struct {
	telegraf.Metric
	raw  []TextField
	keys []string
	text []byte
}

func (m *textMetric) TextFields() ([]TextField, []string, []byte, bool) {
	return m.raw, m.keys, m.text, true
}

// field is one field of a test metric: its key and value, and the text
// it is held as (a uint64 or int64 is held as its digits).
type field struct {
	key   string
	value any
}

// both returns the same metric twice: as metric.New's, fields in order,
// and as a textMetric.
func both(name string, tags map[string]string, tm time.Time, fields ...field) (plainM, textM telegraf.Metric) {
	m := metric.New(name, tags, map[string]any{}, tm)
	tmx := &textMetric{Metric: metric.New(name, tags, map[string]any{}, tm)}
	for _, f := range fields {
		m.AddField(f.key, f.value)
		tmx.Metric.AddField(f.key, f.value)
		var kind byte
		var v []byte
		switch x := f.value.(type) {
		case uint64:
			kind, v = KindUint, strconv.AppendUint(nil, x, 10)
		case int64:
			kind, v = KindInt, strconv.AppendInt(nil, x, 10)
		case string:
			kind, v = KindString, []byte(x)
		}
		tmx.keys = append(tmx.keys, f.key)
		tmx.raw = append(tmx.raw, TextField{Off: uint32(len(tmx.text)), Len: uint32(len(v)), Key: uint16(len(tmx.keys) - 1), Kind: kind})
		tmx.text = append(tmx.text, v...)
	}
	return m, tmx
}

func encodeOne(t *testing.T, m telegraf.Metric, sorted bool) (string, string) {
	t.Helper()
	var out bytes.Buffer
	enc := NewEncoder(&out)
	if sorted {
		enc.SortFields()
	}
	// A line before and after: the metric's line must sit between them
	// whole, or not at all.
	before, _ := both("before", nil, ts, field{"v", uint64(1)})
	_ = enc.Encode(before)
	err := enc.Encode(m)
	_ = enc.Encode(before)
	if ferr := enc.Flush(); ferr != nil {
		t.Fatal(ferr)
	}
	e := ""
	if err != nil {
		e = err.Error()
	}
	return out.String(), e
}

// TestTextFieldsWriteTheLinesOfTheirValues: a metric whose fields come as
// text gives the line (or the error) its values give.
func TestTextFieldsWriteTheLinesOfTheirValues(t *testing.T) {
	tags := map[string]string{"proxy": "app", "server": "/run/haproxy.sock", "sv": "web-1"}
	for _, tc := range []struct {
		name   string
		mName  string
		tags   map[string]string
		tm     time.Time
		fields []field
	}{
		{"plain", "haproxy", tags, ts, []field{{"scur", uint64(3)}, {"lastsess", int64(-1)}, {"status", "UP 1/2"}, {"http_response.2xx", uint64(math.MaxUint64)}, {"status.UP", int64(1)}}},
		{"zero time", "haproxy", tags, time.Time{}, []field{{"scur", uint64(3)}}},
		{"time out of range", "haproxy", tags, time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), []field{{"scur", uint64(3)}}},
		{"nanoseconds, another zone", "haproxy", tags, time.Unix(1700000000, 123).In(time.FixedZone("x", 3600)), []field{{"scur", uint64(3)}}},
		{"strings to escape", "haproxy", tags, ts, []field{{"a", "q\"b\\c\nd\re\tf"}, {"b", ""}, {"c", "é"}}},
		{"invalid UTF-8 string left out", "haproxy", tags, ts, []field{{"a", "x\xff"}, {"b", uint64(1)}}},
		{"only an invalid string", "haproxy", tags, ts, []field{{"a", "x\xff"}}},
		{"no field", "haproxy", tags, ts, nil},
		{"tag value to escape", "haproxy", map[string]string{"proxy": "a b,c=d"}, ts, []field{{"scur", uint64(3)}}},
		{"tag value with a newline", "haproxy", map[string]string{"proxy": "a\nb"}, ts, []field{{"scur", uint64(3)}}},
		{"tag value with a backslash", "haproxy", map[string]string{"proxy": `a\b`, "z": `end\`}, ts, []field{{"scur", uint64(3)}}},
		{"empty tag value", "haproxy", map[string]string{"proxy": "", "sv": "x"}, ts, []field{{"scur", uint64(3)}}},
		{"name to escape", "hap roxy,x", tags, ts, []field{{"scur", uint64(3)}}},
		{"name with a quote and equals", `ha"p=x`, tags, ts, []field{{"scur", uint64(3)}}},
		{"bad name", "bad\nname", tags, ts, []field{{"scur", uint64(3)}}},
		{"field key to escape", "haproxy", tags, ts, []field{{"s cur,x=y", uint64(3)}, {"b", int64(-7)}}},
		{"bad field key", "haproxy", tags, ts, []field{{"b", int64(-7)}, {"s\ncur", uint64(3)}}},
		{"non-ASCII everywhere", "häproxy", map[string]string{"prøxy": "ü"}, ts, []field{{"sçur", uint64(3)}}},
		{"unsorted keys", "haproxy", tags, ts, []field{{"z", uint64(1)}, {"a", uint64(2)}, {"m", "x"}, {"b", int64(0)}}},
	} {
		for _, sorted := range []bool{false, true} {
			pm, tmx := both(tc.mName, tc.tags, tc.tm, tc.fields...)
			want, wantErr := encodeOne(t, pm, sorted)
			got, gotErr := encodeOne(t, tmx, sorted)
			if got != want || (gotErr == "") != (wantErr == "") {
				t.Errorf("%s (sorted %v):\ngot  %q (error %q)\nwant %q (error %q)", tc.name, sorted, got, gotErr, want, wantErr)
			}
		}
	}
}

// TestTextFieldsSortedOrdersAreKept: the encoder keeps the sorted order of
// a few key sequences; metrics alternating between more sequences than it
// keeps are still each written in their own order.
func TestTextFieldsSortedOrdersAreKept(t *testing.T) {
	shapes := [][]field{
		{{"z", uint64(1)}, {"a", uint64(2)}},
		{{"b", uint64(1)}, {"a", uint64(2)}, {"c", uint64(3)}},
		{{"y", uint64(1)}, {"x", uint64(2)}},
		{{"q", uint64(1)}, {"p", uint64(2)}, {"o", uint64(3)}},
		{{"k", uint64(1)}, {"j", uint64(2)}},
		{{"z", uint64(1)}, {"b", uint64(2)}},
	}
	var got, want bytes.Buffer
	eg, ew := NewEncoder(&got), NewEncoder(&want)
	eg.SortFields()
	ew.SortFields()
	for i := 0; i < 40; i++ {
		pm, tmx := both("m", nil, ts, shapes[(i*7)%len(shapes)]...)
		if err := ew.Encode(pm); err != nil {
			t.Fatal(err)
		}
		if err := eg.Encode(tmx); err != nil {
			t.Fatal(err)
		}
	}
	_ = eg.Flush()
	_ = ew.Flush()
	if got.String() != want.String() {
		t.Errorf("got\n%s\nwant\n%s", got.String(), want.String())
	}
}

// FuzzTextFields checks the text way against the general way on any name,
// tag and field.
func FuzzTextFields(f *testing.F) {
	f.Add("haproxy", "proxy", "app", "scur", "s", uint64(3), int64(-1), "UP 1/2")
	f.Add("a b", "k,", "v=", "x y", "", uint64(0), int64(0), "\"\\\n")
	f.Add("n\\", "k\\", "\\", "\xff", "\t", uint64(1), int64(1), "\xff")
	f.Fuzz(func(t *testing.T, name, tagKey, tagValue, key1, key2 string, u uint64, i int64, s string) {
		fields := []field{{key1, u}, {key2, i}, {key1 + "s", s}}
		for _, sorted := range []bool{false, true} {
			pm, tmx := both(name, map[string]string{tagKey: tagValue, "zz": "1"}, ts, fields...)
			if len(pm.FieldList()) != len(tmx.(*textMetric).raw) {
				return // AddField replaced a duplicate key: not the same metric
			}
			want, wantErr := encodeOne(t, pm, sorted)
			got, gotErr := encodeOne(t, tmx, sorted)
			if got != want || (gotErr == "") != (wantErr == "") {
				t.Errorf("sorted %v:\ngot  %q (error %q)\nwant %q (error %q)", sorted, got, gotErr, want, wantErr)
			}
		}
	})
}
