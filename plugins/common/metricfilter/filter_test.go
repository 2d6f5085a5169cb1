package metricfilter

import (
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

func backendRow() telegraf.Metric {
	return metric.New("haproxy",
		map[string]string{"proxy": "web", "sv": "BACKEND", "type": "backend", "server": "/run/a.sock"},
		map[string]any{"scur": uint64(1), "smax": uint64(2), "http_response.2xx": uint64(3), "status.UP": uint64(1)},
		time.Unix(0, 0))
}

func TestSelect(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want bool
	}{
		{"nothing set", Options{}, true},
		{"namepass matches", Options{NamePass: []string{"hap*"}}, true},
		{"namepass misses", Options{NamePass: []string{"haproxy_info"}}, false},
		{"namedrop matches", Options{NameDrop: []string{"haproxy"}}, false},
		{"namepass and namedrop both match: dropped", Options{NamePass: []string{"h*"}, NameDrop: []string{"*proxy"}}, false},
		{"namepass with separator", Options{NamePass: []string{"hap*"}, NamePassSeparator: "."}, true},
		{"tagpass on one value", Options{TagPass: map[string][]string{"proxy": {"we?"}}}, true},
		{"tagpass misses", Options{TagPass: map[string][]string{"proxy": {"api"}}}, false},
		{"tagpass: any key may match", Options{TagPass: map[string][]string{"proxy": {"api"}, "sv": {"BACKEND"}}}, true},
		{"tagpass on a tag the metric lacks", Options{TagPass: map[string][]string{"host": {"*"}}}, false},
		{"tagdrop matches", Options{TagDrop: map[string][]string{"type": {"backend"}}}, false},
		{"tagdrop misses", Options{TagDrop: map[string][]string{"type": {"frontend"}}}, true},
		{"tagpass and tagdrop both match: dropped", Options{TagPass: map[string][]string{"proxy": {"web"}}, TagDrop: map[string][]string{"sv": {"BACK*"}}}, false},
		{"empty tagpass list passes nothing", Options{TagPass: map[string][]string{"proxy": {}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(tc.opts, true)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Select(backendRow()); got != tc.want {
				t.Errorf("Select = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestModify(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       Options
		keepFields bool
		fields     []string
		tags       []string
	}{
		{"nothing set", Options{}, true,
			[]string{"http_response.2xx", "scur", "smax", "status.UP"}, []string{"proxy", "server", "sv", "type"}},
		{"fieldinclude", Options{FieldInclude: []string{"s*"}}, true,
			[]string{"scur", "smax", "status.UP"}, []string{"proxy", "server", "sv", "type"}},
		{"fieldinclude and fieldexclude", Options{FieldInclude: []string{"s*"}, FieldExclude: []string{"status.*"}}, true,
			[]string{"scur", "smax"}, []string{"proxy", "server", "sv", "type"}},
		{"fieldpass and fielddrop add to them", Options{FieldPass: []string{"scur"}, FieldInclude: []string{"smax"}, FieldDrop: []string{"smax"}}, true,
			[]string{"scur"}, []string{"proxy", "server", "sv", "type"}},
		{"fields left to the input", Options{FieldInclude: []string{"scur"}}, false,
			[]string{"http_response.2xx", "scur", "smax", "status.UP"}, []string{"proxy", "server", "sv", "type"}},
		{"taginclude", Options{TagInclude: []string{"proxy", "s?"}}, true,
			[]string{"http_response.2xx", "scur", "smax", "status.UP"}, []string{"proxy", "sv"}},
		{"tagexclude", Options{TagExclude: []string{"server"}}, true,
			[]string{"http_response.2xx", "scur", "smax", "status.UP"}, []string{"proxy", "sv", "type"}},
		{"every field excluded", Options{FieldExclude: []string{"*"}}, true,
			nil, []string{"proxy", "server", "sv", "type"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(tc.opts, tc.keepFields)
			if err != nil {
				t.Fatal(err)
			}
			m := backendRow()
			f.Modify(m)
			var fields, tags []string
			for _, fl := range m.FieldList() {
				fields = append(fields, fl.Key)
			}
			for _, tg := range m.TagList() {
				tags = append(tags, tg.Key)
			}
			sort.Strings(fields)
			sort.Strings(tags)
			if !reflect.DeepEqual(fields, tc.fields) || !reflect.DeepEqual(tags, tc.tags) {
				t.Errorf("fields %v tags %v, want %v %v", fields, tags, tc.fields, tc.tags)
			}
		})
	}
}

func TestNothingSetIsNil(t *testing.T) {
	f, err := New(Options{FieldInclude: []string{"scur"}}, false)
	if err != nil || f != nil {
		t.Fatalf("New = %v, %v; want nil, nil when what is set is left to the input", f, err)
	}
	if !f.Select(backendRow()) || f.Modifies() {
		t.Error("a nil filter must pass everything and change nothing")
	}
}

func TestBadPatternNamesOption(t *testing.T) {
	_, err := New(Options{TagPass: map[string][]string{"proxy": {"[web"}}}, true)
	if err == nil || err.Error()[:13] != "tagpass.proxy" {
		t.Fatalf("err = %v, want it to start with tagpass.proxy", err)
	}
}
