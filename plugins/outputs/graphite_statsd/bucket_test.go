package graphite_statsd

import (
	"testing"

	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/serializers/graphite"
)

// bucketMatchesTelegraf checks bucketName against Telegraf's
// SerializeBucketName for one metric, template and prefix.
func bucketMatchesTelegraf(t *testing.T, name string, tags map[string]string, template, prefix string) {
	t.Helper()
	m := metric.New(name, tags, map[string]any{"f": 1.0}, ts)
	s := &serializer{prefix: prefix, splitTemplates: make(map[string][]string)}
	for range 2 { // the second call runs on warm scratch buffers
		got := s.bucketName(m.Name(), m.TagList(), template)
		want := graphite.SerializeBucketName(m.Name(), m.Tags(), template, prefix)
		if got != want {
			t.Fatalf("name %q tags %q template %q prefix %q:\ngot  %q\nwant %q", name, tags, template, prefix, got, want)
		}
	}
}

func TestBucketNameMatchesTelegraf(t *testing.T) {
	haproxy := map[string]string{"host": "web01", "proxy": "app.v1", "sv": "web-1", "process_num": "1", "type": "server", "server": "/run/a.sock"}
	cases := []struct {
		name     string
		tags     map[string]string
		template string
		prefix   string
	}{
		{"haproxy", haproxy, "", ""},
		{"haproxy", haproxy, "host.process_num.proxy.sv.field", "my.scope"},
		{"haproxy", haproxy, "host.tags.measurement.field", "p"},
		{"haproxy", haproxy, "measurement.proxy.proxy.field", ""},             // a tag is used once
		{"haproxy", haproxy, "tags.tags.field", ""},                           // only the first "tags" is filled
		{"TAGS", haproxy, "measurement.tags.field", ""},                       // the first "TAGS" part wins, even a name
		{"m", map[string]string{"a": "TAGS", "b": "x.y"}, "a.tags.field", ""}, // ...or a tag value
		{"m", map[string]string{"measurement": "v", "field": "w"}, "measurement.field.tags", ""},
		{"m", nil, "nosuchtag", "p"}, // nothing matches: no bucket
		{"m", nil, "tags", ""},       // an empty TAGS
		{"m", map[string]string{"a": "1"}, "..a..", "p"},
		{"m", map[string]string{"a": "1"}, "field.field", ""},
	}
	for _, c := range cases {
		bucketMatchesTelegraf(t, c.name, c.tags, c.template, c.prefix)
	}
}

func FuzzBucketNameMatchesTelegraf(f *testing.F) {
	f.Add("haproxy", "host.tags.measurement.field", "p", "proxy", "app.v1", "sv", "TAGS", "host", "h")
	f.Add("TAGS", "measurement.tags.field", "", "a", "", "b", "x", "c", "y")
	f.Add("m", "a.a.tags.tags.field.field", "", "a", "1", "tags", "2", "field", "3")
	f.Fuzz(func(t *testing.T, name, template, prefix, k1, v1, k2, v2, k3, v3 string) {
		if name == "" {
			return
		}
		tags := map[string]string{}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}, {k3, v3}} {
			if kv[0] != "" && kv[1] != "" { // metric.New drops empty keys and values
				tags[kv[0]] = kv[1]
			}
		}
		bucketMatchesTelegraf(t, name, tags, template, prefix)
	})
}
