package haproxy

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/hap-monitor/hap-monitor/plugins/common/lineproto"
)

// The input's metric type must behave as Telegraf's own (metric.New),
// method by method: a Telegraf processor, serializer or output linked with
// this package may call any method of telegraf.Metric or
// telegraf.TemplateMetric on it.

// contractRow is one CSV row and the tags and fields the input must make
// of it.
const contractAnswer = "# pxname,svname,qcur,scur,stot,status,weight,pid,type,lastsess,check_status,addr,hrsp_2xx,\n" +
	"app,web-1,0,3,123456789012,UP 1/2,100,1,2,-1,L4OK,10.0.0.1:80,4294967296,\n\n"

var (
	contractTags = map[string]string{
		"server": testSocketTag, "proxy": "app", "sv": "web-1", "type": "server", "process_num": "1",
	}
	contractFields = map[string]any{
		"qcur": uint64(0), "scur": uint64(3), "stot": uint64(123456789012), "status": "UP 1/2",
		"weight": uint64(100), "pid": uint64(1), "lastsess": int64(-1), "check_status": "L4OK",
		"addr": "10.0.0.1:80", "http_response.2xx": uint64(4294967296),
		"status.UP": int64(1), "status.DOWN": int64(0), "status.NOLB": int64(0), "status.DRAIN": int64(0),
		"status.MAINT": int64(0), "status.NOCHECK": int64(0), "status.OTHER": int64(0),
	}
	contractTime = time.Unix(1700000000, 123456789)
	contractZone = time.FixedZone("x", 3600)
)

// contractPair returns the input's metric of contractAnswer and the
// metric.New metric of the same data.
func contractPair(t *testing.T) (ours, theirs telegraf.Metric) {
	t.Helper()
	h := newPlugin(t, &HAProxy{Servers: []string{testSocketTag}})
	ms, err := readAnswer(t, h, []byte(contractAnswer), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Fatalf("%d metrics, want 1", len(ms))
	}
	ours = ms[0]
	if _, ok := ours.(*rowMetric); !ok {
		t.Fatalf("the input's metric is a %T, want *rowMetric", ours)
	}
	ours.SetTime(contractTime)
	return ours, metric.New("haproxy", contractTags, contractFields, contractTime)
}

// sameMetric compares every observer of telegraf.Metric and
// telegraf.TemplateMetric, for the keys given and for absent ones.
func sameMetric(t *testing.T, step string, ours, theirs telegraf.Metric, tagKeys, fieldKeys []string) {
	t.Helper()
	fail := func(what string, got, want any) {
		t.Helper()
		t.Errorf("%s: %s = %#v, metric.New's = %#v", step, what, got, want)
	}
	if ours.Name() != theirs.Name() {
		fail("Name()", ours.Name(), theirs.Name())
	}
	if !ours.Time().Equal(theirs.Time()) || ours.Time() != theirs.Time() {
		fail("Time()", ours.Time(), theirs.Time())
	}
	if ours.Type() != theirs.Type() {
		fail("Type()", ours.Type(), theirs.Type())
	}
	if !maps.Equal(ours.Tags(), theirs.Tags()) {
		fail("Tags()", ours.Tags(), theirs.Tags())
	}
	// TagList is sorted by key in both.
	if got, want := tagList(ours), tagList(theirs); !slices.Equal(got, want) {
		fail("TagList()", got, want)
	}
	if !reflect.DeepEqual(ours.Fields(), theirs.Fields()) {
		fail("Fields()", ours.Fields(), theirs.Fields())
	}
	// FieldList's order is undefined (metric.New's follows a map). Ours
	// turns text fields into Telegraf's values: it is asked of a copy,
	// so that the other observers see text fields for as long as the
	// changes below keep them.
	if got, want := fieldList(ours.Copy()), fieldList(theirs); !reflect.DeepEqual(got, want) {
		fail("FieldList() of a copy", got, want)
	}
	if tm, ok := ours.(lineproto.TextMetric); ok {
		if fields, keys, text, ok := tm.TextFields(); ok {
			got := map[string]any{}
			for _, f := range fields {
				v := string(text[f.Off : f.Off+f.Len])
				switch f.Kind {
				case lineproto.KindUint:
					got[keys[f.Key]] = v + "u"
				case lineproto.KindInt:
					got[keys[f.Key]] = v + "i"
				default:
					got[keys[f.Key]] = v
				}
			}
			want := map[string]any{}
			for k, v := range theirs.Fields() {
				switch v := v.(type) {
				case uint64:
					want[k] = fmt.Sprintf("%du", v)
				case int64:
					want[k] = fmt.Sprintf("%di", v)
				default:
					want[k] = v
				}
			}
			if !reflect.DeepEqual(got, want) {
				fail("TextFields()", got, want)
			}
		}
	}
	if ours.HashID() != theirs.HashID() {
		fail("HashID()", ours.HashID(), theirs.HashID())
	}
	for _, ex := range [][2][]string{{nil, nil}, {{"sv"}, nil}, {nil, {"scur", "qcur"}}, {{"server", "type"}, {"status", "nope"}}} {
		if a, b := ours.HashIDWithFieldsFiltered(ex[0], ex[1]), theirs.HashIDWithFieldsFiltered(ex[0], ex[1]); a != b {
			fail(fmt.Sprintf("HashIDWithFieldsFiltered(%q, %q)", ex[0], ex[1]), a, b)
		}
	}
	ot, ok1 := ours.(telegraf.TemplateMetric)
	tt, ok2 := theirs.(telegraf.TemplateMetric)
	if !ok1 || !ok2 {
		t.Fatalf("%s: %T is a telegraf.TemplateMetric: %v, %T: %v", step, ours, ok1, theirs, ok2)
	}
	if ot.String() != tt.String() {
		fail("String()", ot.String(), tt.String())
	}
	for _, k := range append(slices.Clone(tagKeys), "absent", "") {
		v1, ok1 := ours.GetTag(k)
		v2, ok2 := theirs.GetTag(k)
		if v1 != v2 || ok1 != ok2 {
			fail(fmt.Sprintf("GetTag(%q)", k), []any{v1, ok1}, []any{v2, ok2})
		}
		if ours.HasTag(k) != theirs.HasTag(k) {
			fail(fmt.Sprintf("HasTag(%q)", k), ours.HasTag(k), theirs.HasTag(k))
		}
		if ot.Tag(k) != tt.Tag(k) {
			fail(fmt.Sprintf("Tag(%q)", k), ot.Tag(k), tt.Tag(k))
		}
	}
	for _, k := range append(slices.Clone(fieldKeys), "absent", "") {
		v1, ok1 := ours.GetField(k)
		v2, ok2 := theirs.GetField(k)
		if !reflect.DeepEqual(v1, v2) || ok1 != ok2 {
			fail(fmt.Sprintf("GetField(%q)", k), []any{v1, ok1}, []any{v2, ok2})
		}
		if ours.HasField(k) != theirs.HasField(k) {
			fail(fmt.Sprintf("HasField(%q)", k), ours.HasField(k), theirs.HasField(k))
		}
		if !reflect.DeepEqual(ot.Field(k), tt.Field(k)) {
			fail(fmt.Sprintf("Field(%q)", k), ot.Field(k), tt.Field(k))
		}
	}
	const text = `{{.Name}} {{.Tag "proxy"}} {{.Tag "host"}} {{.Field "scur"}} {{.Field "status"}} {{.Field "absent"}} {{.Time.Unix}} {{len .Fields}} {{len .Tags}}`
	if a, b := execTemplate(t, text, ot), execTemplate(t, text, tt); a != b {
		fail("template "+text, a, b)
	}
}

func tagList(m telegraf.Metric) []telegraf.Tag {
	var out []telegraf.Tag
	for _, t := range m.TagList() {
		out = append(out, *t)
	}
	return out
}

func fieldList(m telegraf.Metric) []telegraf.Field {
	var out []telegraf.Field
	for _, f := range m.FieldList() {
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b telegraf.Field) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func execTemplate(t *testing.T, text string, m telegraf.TemplateMetric) string {
	t.Helper()
	tmpl, err := template.New("m").Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, m); err != nil {
		t.Fatalf("template on %T: %v", m, err)
	}
	return b.String()
}

// contractStep changes a metric the same way on both sides.
type contractStep struct {
	name string
	do   func(telegraf.Metric)
}

var contractSteps = []contractStep{
	// What the shim does to every metric: the host and global tags where
	// missing, the input's precision.
	{"AddTag(host)", func(m telegraf.Metric) {
		if !m.HasTag("host") {
			m.AddTag("host", "lb1")
		}
	}},
	{"SetTime(Round)", func(m telegraf.Metric) { m.SetTime(m.Time().Round(time.Second)) }},
	{"AddTag(dc), first of the keys", func(m telegraf.Metric) { m.AddTag("dc", "eu") }},
	{"AddTag(zz), last of the keys", func(m telegraf.Metric) { m.AddTag("zz", "last") }},
	{"AddTag(a) past the spare room", func(m telegraf.Metric) { m.AddTag("a", "1") }},
	{"AddTag(proxy) replaces", func(m telegraf.Metric) { m.AddTag("proxy", "other") }},
	{"AddTag empty value", func(m telegraf.Metric) { m.AddTag("empty", "") }},
	{"RemoveTag(sv)", func(m telegraf.Metric) { m.RemoveTag("sv") }},
	{"RemoveTag(absent)", func(m telegraf.Metric) { m.RemoveTag("absent") }},
	{"RemoveTag(dc), RemoveTag(zz)", func(m telegraf.Metric) { m.RemoveTag("dc"); m.RemoveTag("zz") }},
	{"AddTag(sv) back", func(m telegraf.Metric) { m.AddTag("sv", "web-2") }},
	// What filters and processors do to fields.
	{"RemoveField(scur)", func(m telegraf.Metric) { m.RemoveField("scur") }},
	{"RemoveField(absent)", func(m telegraf.Metric) { m.RemoveField("absent") }},
	{"AddField(qcur) replaces with an int", func(m telegraf.Metric) { m.AddField("qcur", 7) }},
	{"AddField(new) uint32", func(m telegraf.Metric) { m.AddField("new", uint32(5)) }},
	{"AddField(f) float32", func(m telegraf.Metric) { m.AddField("f", float32(1.5)) }},
	{"AddField(b) []byte", func(m telegraf.Metric) { m.AddField("b", []byte("x")) }},
	{"AddField(bad) unsupported", func(m telegraf.Metric) { m.AddField("bad", struct{}{}) }},
	{"AddField(scur) back", func(m telegraf.Metric) { m.AddField("scur", uint64(9)) }},
	{"RemoveField of every status field", func(m telegraf.Metric) {
		for _, s := range ServerStates {
			m.RemoveField("status." + s)
		}
	}},
	{"SetName", func(m telegraf.Metric) { m.SetName("haproxy_x") }},
	{"AddPrefix", func(m telegraf.Metric) { m.AddPrefix("pre_") }},
	{"AddSuffix", func(m telegraf.Metric) { m.AddSuffix("_suf") }},
	{"SetType", func(m telegraf.Metric) { m.SetType(telegraf.Gauge) }},
	{"SetTime", func(m telegraf.Metric) { m.SetTime(time.Unix(1800000000, 5).In(contractZone)) }},
	{"Accept, Reject, Drop", func(m telegraf.Metric) { m.Accept(); m.Reject(); m.Drop() }},
}

var (
	contractTagKeys   = []string{"server", "proxy", "sv", "type", "process_num", "host", "dc", "zz", "a", "empty"}
	contractFieldKeys = []string{"qcur", "scur", "stot", "status", "lastsess", "http_response.2xx", "status.UP", "new", "f", "b", "bad"}
)

// TestMetricContract compares the input's metric with metric.New's on the
// same data, then after each step of changes applied to both: with its
// fields as text for as long as the changes keep them so, and with them
// turned into Telegraf's values from the start.
func TestMetricContract(t *testing.T) {
	for _, first := range []bool{false, true} {
		ours, theirs := contractPair(t)
		if tm := ours.(lineproto.TextMetric); !textFields(tm) {
			t.Fatal("a parsed row's fields are not held as text")
		}
		if first {
			ours.FieldList()
		}
		sameMetric(t, "as made", ours, theirs, contractTagKeys, contractFieldKeys)
		for _, s := range contractSteps {
			s.do(ours)
			s.do(theirs)
			sameMetric(t, fmt.Sprintf("after %s (FieldList first: %v)", s.name, first), ours, theirs, contractTagKeys, contractFieldKeys)
		}
	}
}

func textFields(m lineproto.TextMetric) bool {
	_, _, _, ok := m.TextFields()
	return ok
}

// TestMetricTextFieldsKept: the changes the shim and filters make keep
// the fields as text; adding a field or asking for FieldList does not.
func TestMetricTextFieldsKept(t *testing.T) {
	ours, _ := contractPair(t)
	tm := ours.(lineproto.TextMetric)
	ours.AddTag("host", "lb1")
	ours.SetTime(ours.Time().Round(time.Second))
	ours.RemoveTag("sv")
	ours.RemoveField("scur")
	_ = ours.Fields()
	_, _ = ours.GetField("qcur")
	_ = ours.HashID()
	if c := ours.Copy().(lineproto.TextMetric); !textFields(tm) || !textFields(c) {
		t.Fatal("fields no longer text after AddTag, SetTime, RemoveTag, RemoveField, Fields, GetField, HashID or Copy")
	}
	ours.FieldList()
	if textFields(tm) {
		t.Fatal("fields still text after FieldList: a caller may change them through it")
	}
}

// TestMetricContractCopy checks that Copy is deep: changing the copy
// leaves the original as it was, and the other way round, at every step.
func TestMetricContractCopy(t *testing.T) {
	ours, theirs := contractPair(t)
	for _, s := range contractSteps {
		c1, c2 := ours.Copy(), theirs.Copy()
		sameMetric(t, "copy before "+s.name, c1, c2, contractTagKeys, contractFieldKeys)
		s.do(c1)
		s.do(c2)
		sameMetric(t, "copy after "+s.name, c1, c2, contractTagKeys, contractFieldKeys)
		sameMetric(t, "original after its copy's "+s.name, ours, theirs, contractTagKeys, contractFieldKeys)
		s.do(ours)
		s.do(theirs)
		sameMetric(t, "original after "+s.name, ours, theirs, contractTagKeys, contractFieldKeys)
		sameMetric(t, "its copy after the original's "+s.name, c1, c2, contractTagKeys, contractFieldKeys)
	}
}

// TestMetricContractRecorded runs the steps on every metric parsed from
// the recorded answers, against a copy made by metric.FromMetric: metrics
// carved from shared chunks must not reach their neighbours.
func TestMetricContractRecorded(t *testing.T) {
	for _, name := range []string{"haproxy-2.6.12.txt", "haproxy-1.7.csv", "haproxy-3.x.csv"} {
		t.Run(name, func(t *testing.T) {
			h := newPlugin(t, &HAProxy{Servers: []string{testSocketTag}})
			ms, err := readAnswer(t, h, readTestdata(t, name), false)
			if err != nil {
				t.Fatal(err)
			}
			refs := make([]telegraf.Metric, len(ms))
			for i, m := range ms {
				refs[i] = metric.FromMetric(m)
			}
			for _, s := range contractSteps {
				for i, m := range ms {
					if _, ok := m.(*rowMetric); !ok {
						continue // haproxy_info is metric.New's own
					}
					s.do(m)
					s.do(refs[i])
				}
				for i, m := range ms {
					sameMetric(t, fmt.Sprintf("metric %d after %s", i, s.name), m, refs[i], contractTagKeys, contractFieldKeys)
				}
				if t.Failed() {
					return
				}
			}
		})
	}
}

// TestMetricTagsAddedWithoutAllocating: the shim adds the host tag to
// every metric; a row's metric has room for it.
func TestMetricTagsAddedWithoutAllocating(t *testing.T) {
	h := newPlugin(t, &HAProxy{Servers: []string{testSocketTag}})
	ms, err := readAnswer(t, h, readTestdata(t, "haproxy-2.6.12.txt"), false)
	if err != nil {
		t.Fatal(err)
	}
	var rows []telegraf.Metric
	for _, m := range ms {
		if _, ok := m.(*rowMetric); ok {
			rows = append(rows, m)
		}
	}
	i := 0
	allocs := testing.AllocsPerRun(len(rows)-1, func() {
		m := rows[i%len(rows)]
		i++
		if !m.HasTag("host") {
			m.AddTag("host", "lb1")
		}
		if !m.HasTag("dc") {
			m.AddTag("dc", "eu")
		}
		m.SetTime(m.Time().Round(time.Second))
		_ = m.HashID()
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per metric, want 0", allocs)
	}
}
