package lineproto

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

var ts = time.Unix(1700000000, 0)

func TestEncoderSkipsOnlyTheBadMetric(t *testing.T) {
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

// ordered builds a metric whose fields keep the order given.
func ordered(name string, tags map[string]string, tm time.Time, kv ...any) telegraf.Metric {
	m := metric.New(name, tags, map[string]any{}, tm)
	for i := 0; i < len(kv); i += 2 {
		m.AddField(kv[i].(string), kv[i+1])
	}
	return m
}

// A metric that fails part way leaves nothing of its line in the buffer,
// wherever it fails, whether or not lines wait before it, and the encoder
// goes on with the next metric.
func TestEncoderLeavesNoPartOfAFailedLine(t *testing.T) {
	good := metric.New("good", map[string]string{"k": "v"}, map[string]any{"v": int64(1)}, ts)
	const goodLine = "good,k=v v=1i 1700000000000000000\n"
	for _, tc := range []struct {
		name string
		bad  telegraf.Metric
		err  string
	}{
		{"measurement", metric.New("bad\nname", nil, map[string]any{"v": 1.0}, ts), `invalid measurement "bad\nname"`},
		{"tag key", metric.New("bad", map[string]string{"a": "1", "k\\": "v"}, map[string]any{"v": 1.0}, ts), `invalid tag key "k\\"`},
		{"tag value", metric.New("bad", map[string]string{"a": "1", "k": "v\xff"}, map[string]any{"v": 1.0}, ts), `invalid tag value k="v\xff"`},
		{"field key after a field", ordered("bad", map[string]string{"k": "v"}, ts, "v", 1.0, "w\nx", 2.0), `invalid field key "w\nx"`},
		{"timestamp", metric.New("bad", map[string]string{"k": "v"}, map[string]any{"v": 1.0}, time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)), "timestamp 2300-01-01T00:00:00Z: " + lineprotocol.ErrValueOutOfRange.Error()},
		{"no usable field", metric.New("bad", nil, map[string]any{"v": math.NaN(), "w": []int{1}}, ts), "metric bad has no field line protocol can hold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, before := range []int{0, 1, 3} {
				var out bytes.Buffer
				enc := NewEncoder(&out)
				for range before {
					if err := enc.Encode(good); err != nil {
						t.Fatal(err)
					}
				}
				err := enc.Encode(tc.bad)
				if err == nil {
					t.Fatalf("%d lines before: no error", before)
				}
				if !strings.HasSuffix(err.Error(), tc.err) {
					t.Errorf("%d lines before: error %q, want it to end in %q", before, err, tc.err)
				}
				if strings.Contains(err.Error(), "point") {
					t.Errorf("%d lines before: error %q numbers the metric among the buffered lines", before, err)
				}
				if want := before * len(goodLine); enc.Len() != want {
					t.Errorf("%d lines before: Len %d after the failed metric, want %d", before, enc.Len(), want)
				}
				if err := enc.Encode(good); err != nil {
					t.Fatalf("%d lines before: the metric after the failed one: %v", before, err)
				}
				if err := enc.Flush(); err != nil {
					t.Fatal(err)
				}
				if want := strings.Repeat(goodLine, before+1); out.String() != want {
					t.Errorf("%d lines before: wrote\n%q\nwant\n%q", before, out.String(), want)
				}
			}
		})
	}
}

// lineprotocol.Encoder drops the part of a line written before an error
// itself; Encode also cuts back on its own, and this says if that ever
// stops being belt and braces.
func TestLineprotocolEncoderDropsTheFailedLine(t *testing.T) {
	var enc lineprotocol.Encoder
	enc.StartLine("a")
	enc.AddField("v", lineprotocol.IntValue(1))
	enc.EndLine(ts)
	keep := string(enc.Bytes())
	enc.StartLine("b")
	enc.AddTag("k", "v")
	enc.AddField("v", lineprotocol.IntValue(1))
	enc.EndLine(time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC))
	if enc.Err() == nil {
		t.Fatal("no error for a timestamp out of range")
	}
	if got := string(enc.Bytes()); got != keep {
		t.Errorf("buffer %q after the error, want %q", got, keep)
	}
}

func TestEncoderFieldTypes(t *testing.T) {
	m := ordered("m", nil, ts,
		"f64", 1.5, "f32", float32(0.25), "i", 3, "i32", int32(-4), "i64", int64(5),
		"u", uint(6), "u32", uint32(7), "u64", uint64(8), "b", true, "s", `say "hi"`,
		"badstr", "x\xffy", "inf", math.Inf(-1), "slice", []string{"no"})
	var out bytes.Buffer
	enc := NewEncoder(&out)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	// A metric without a time gets a line without a timestamp.
	if err := enc.Encode(metric.New("notime", nil, map[string]any{"v": 1.0}, time.Time{})); err != nil {
		t.Fatal(err)
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `m f64=1.5,f32=0.25,i=3i,i32=-4i,i64=5i,u=6u,u32=7u,u64=8u,b=true,s="say \"hi\"" 1700000000000000000` + "\n" +
		"notime v=1\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

// fieldValue also takes the types a telegraf.Metric other than
// metric.New's (which converts them) may hold.
func TestFieldValue(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string // "" for left out
	}{
		{1.5, "1.5"}, {float32(0.5), "0.5"}, {math.NaN(), ""}, {float32(math.Inf(1)), ""},
		{int64(-1), "-1i"}, {7, "7i"}, {int32(-2), "-2i"},
		{uint64(1), "1u"}, {uint(2), "2u"}, {uint32(3), "3u"},
		{false, "false"}, {"a\"b", `"a\"b"`}, {"\xff", ""},
		{time.Millisecond, "1000000i"}, {int16(1), ""}, {nil, ""},
	} {
		v, ok := fieldValue(tc.in)
		got := ""
		if ok {
			got = v.String()
		}
		if got != tc.want {
			t.Errorf("fieldValue(%#v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestEncoderFlush(t *testing.T) {
	enc := NewEncoder(failWriter{})
	if err := enc.Flush(); err != nil {
		t.Errorf("flushing nothing: %v", err)
	}
	if err := enc.Encode(metric.New("m", nil, map[string]any{"v": 1.0}, ts)); err != nil {
		t.Fatal(err)
	}
	if enc.Len() == 0 {
		t.Fatal("Len 0 with a line buffered")
	}
	if err := enc.Flush(); err == nil || err.Error() != "broken pipe" {
		t.Errorf("Flush: %v, want the writer's error", err)
	}
	if enc.Len() != 0 {
		t.Errorf("Len %d after Flush", enc.Len())
	}
}

func TestEncoderSortFields(t *testing.T) {
	m := metric.New("haproxy_info", map[string]string{"server": "/a"},
		map[string]any{"version": "2.6", "Uptime_sec": int64(5), "CurrConns": int64(1), "Idle_pct": int64(99)}, time.Unix(1, 0))
	keys := func() string {
		var k []string
		for _, f := range m.FieldList() {
			k = append(k, f.Key)
		}
		return strings.Join(k, ",")
	}
	before := keys()
	var plain, sorted bytes.Buffer
	e := NewEncoder(&plain)
	if err := e.Encode(m); err != nil {
		t.Fatal(err)
	}
	_ = e.Flush()
	e = NewEncoder(&sorted)
	e.SortFields()
	if err := e.Encode(m); err != nil {
		t.Fatal(err)
	}
	_ = e.Flush()
	want := "haproxy_info,server=/a CurrConns=1i,Idle_pct=99i,Uptime_sec=5i,version=\"2.6\" 1000000000\n"
	if sorted.String() != want {
		t.Errorf("sorted: %q, want %q", sorted.String(), want)
	}
	if plain.String() == want {
		t.Error("without SortFields the fields keep the metric's order, which is not sorted here")
	}
	if after := keys(); after != before {
		t.Errorf("the metric's fields became %s, were %s: sorting must not reorder the metric itself", after, before)
	}
}
