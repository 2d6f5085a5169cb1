package haproxy

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
)

func TestParseTableHead(t *testing.T) {
	tests := []struct {
		line string
		want tableHead
		err  string // in the error; "" for none
	}{
		// As HAProxy 2.6 prints them.
		{"# table: tbl_ip, type: ip, size:1048576, used:2", tableHead{"tbl_ip", "ip", 1048576, 2}, ""},
		{"# table: tbl_ipv6, type: ipv6, size:100, used:1", tableHead{"tbl_ipv6", "ipv6", 100, 1}, ""},
		{"# table: tbl_int, type: integer, size:10, used:0", tableHead{"tbl_int", "integer", 10, 0}, ""},
		{"# table: tbl_str, type: string, size:2048, used:1", tableHead{"tbl_str", "string", 2048, 1}, ""},
		{"# table: tbl_bin, type: binary, size:5, used:0", tableHead{"tbl_bin", "binary", 5, 0}, ""},
		// Names as HAProxy allows them; a peers section's table.
		{"# table: app.v1-x:y_z, type: ip, size:1, used:1", tableHead{"app.v1-x:y_z", "ip", 1, 1}, ""},
		{"# table: mypeers/sessions, type: string, size:3, used:0", tableHead{"mypeers/sessions", "string", 3, 0}, ""},
		// Items a later HAProxy may add or reorder.
		{"# table: t, used:4, size:8, type: ip, refcnt:2", tableHead{"t", "ip", 8, 4}, ""},
		{"# table: t, type:ip, size: 8 ,used: 4 ", tableHead{"t", "ip", 8, 4}, ""},
		{"# table: t, type: ip, size:8, used:0, shards:4", tableHead{"t", "ip", 8, 0}, ""},
		// Malformed.
		{"# contents not dumped due to insufficient privileges", tableHead{}, `not a "# table: " line`},
		{"table: t, type: ip, size:8, used:0", tableHead{}, `not a "# table: " line`},
		{"# table: , type: ip, size:8, used:0", tableHead{}, "no table name"},
		{"# table: t", tableHead{}, "no type"},
		{"# table: t, size:8, used:0", tableHead{}, "no type"},
		{"# table: t, type: , size:8, used:0", tableHead{}, "empty type"},
		{"# table: t, type: ip, used:0", tableHead{}, "no size"},
		{"# table: t, type: ip, size:8", tableHead{}, "no used"},
		{"# table: t, type: ip, size:8k, used:0", tableHead{}, `size "8k" is not a count`},
		{"# table: t, type: ip, size:8, used:-1", tableHead{}, `used "-1" is not a count`},
		{"# table: t, type: ip, size:99999999999999999999, used:0", tableHead{}, "is not a count"},
		{"# table: t, type ip, size:8, used:0", tableHead{}, `item "type ip" is not "key:value"`},
		{"Unknown command, but maybe one of the following ones is a better match:", tableHead{}, `not a "# table: " line`},
	}
	for _, tt := range tests {
		got, err := parseTableHead([]byte(tt.line))
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("parseTableHead(%q): %v", tt.line, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("parseTableHead(%q) = %+v, %v; want an error saying %q", tt.line, got, err, tt.err)
		case tt.err == "" && got != tt.want:
			t.Errorf("parseTableHead(%q) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
}

// tableWant is what a user checks on one haproxy_table metric.
type tableWant struct {
	typ        string
	size, used int64
}

// checkTables asserts the haproxy_table metrics of ms: one per table of
// want, with its tags and int64 fields, and no other.
func checkTables(t *testing.T, ms []telegraf.Metric, serverTag string, want map[string]tableWant) {
	t.Helper()
	if n := count(ms, "haproxy_table"); n != len(want) {
		t.Errorf("%d haproxy_table metrics, want %d", n, len(want))
	}
	for name, w := range want {
		m := find(ms, "haproxy_table", map[string]string{"table": name})
		if m == nil {
			t.Errorf("no haproxy_table metric for table %s", name)
			continue
		}
		wantTags := map[string]string{"server": serverTag, "process_num": "1", "table": name, "type": w.typ}
		if got := m.Tags(); fmt.Sprint(got) != fmt.Sprint(wantTags) {
			t.Errorf("table %s: tags %v, want %v", name, got, wantTags)
		}
		wantFields := map[string]any{"size": w.size, "used": w.used}
		if got := m.Fields(); fmt.Sprint(got) != fmt.Sprint(wantFields) || got["size"] != w.size || got["used"] != w.used {
			t.Errorf("table %s: fields %#v, want %#v", name, got, wantFields)
		}
	}
}

// recordedTables are the tables of testdata/haproxy-2.6.12-tables.txt, a
// real HAProxy 2.6.12's answer to "show info;show stat;show table" with
// a table of each key type and entries set over its admin socket
// (HAProxy cannot set a binary key from the CLI).
var recordedTables = map[string]tableWant{
	"tbl_ip":   {"ip", 1048576, 2},
	"tbl_ipv6": {"ipv6", 100, 1},
	"tbl_int":  {"integer", 10, 1},
	"tbl_str":  {"string", 2048, 1},
	"tbl_bin":  {"binary", 5, 0},
}

func TestRecordedTables(t *testing.T) {
	tests := []struct {
		name string
		h    HAProxy
		want map[string]tableWant
	}{
		{"all", HAProxy{}, recordedTables},
		{"keep_field_names", HAProxy{KeepFieldNames: true}, recordedTables},
		{"types", HAProxy{Types: []string{"backend"}}, recordedTables},
		{"include_fields", HAProxy{IncludeFields: []string{"status.*"}}, nil},
	}
	data := readTestdata(t, "haproxy-2.6.12-tables.txt")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.h.Servers = []string{testSocketTag}
			h := newPlugin(t, &tt.h)
			ms, err := readAnswer(t, h, data, false)
			if err != nil {
				t.Fatal(err)
			}
			checkTables(t, ms, testSocketTag, tt.want)
			if n := count(ms, "haproxy"); n != 19 {
				t.Errorf("%d haproxy rows, want the recording's 19", n)
			}
		})
	}
	t.Run("exclude_fields", func(t *testing.T) {
		h := newPlugin(t, &HAProxy{Servers: []string{testSocketTag}, ExcludeFields: []string{"size"}})
		ms, err := readAnswer(t, h, data, false)
		if err != nil {
			t.Fatal(err)
		}
		m := find(ms, "haproxy_table", map[string]string{"table": "tbl_ip"})
		if m == nil || fmt.Sprint(m.Fields()) != "map[used:2]" {
			t.Errorf("tbl_ip with size excluded: %v", m)
		}
	})
}

// TestTableAnswers reads "show table" answers alone, as the optional
// command they answer: every good line is emitted, every bad one reported
// with its number and text; a usage text or a refusal is no error.
func TestTableAnswers(t *testing.T) {
	good := "# table: a, type: ip, size:10, used:1\n# table: b, type: string, size:20, used:0\n"
	tests := []struct {
		name   string
		answer string
		tables int
		err    string // "" for none
	}{
		{"no table", "\n", 0, ""},
		{"two tables", good + "\n", 2, ""},
		{"a bad line between", "# table: a, type: ip, size:10, used:1\n# table: x, type: ip\n# table: b, type: string, size:20, used:0\n\n", 2,
			`line 2 left out: no size: "# table: x, type: ip"`},
		{"two bad lines", "garbage\n" + good + "more garbage\n\n", 2, `line 1 left out: not a "# table: " line: "garbage" (and 1 more bad lines)`},
		{"an old HAProxy's usage text", "Unknown command. Please enter one of the following commands only :\n  help : this message\n\n", 0, ""},
		{"a usage text, the last answer", "Unknown command: 'show', but maybe one of the following ones is a better match:\n  help\n", 0, ""},
		{"a usage text cut short", "Unknown command. Please enter one of the following commands only :\n  help : th", 0,
			`show table: HAProxy's answer "Unknown command. Please enter one of the following commands ": unexpected EOF`},
		{"a refusal", "Permission denied\n\n", 0, ""},
		{"no empty line", good, 2, "truncated: no closing empty line after line 2"},
		{"empty", "", 0, "truncated: empty answer"},
		{"cut in a line", good + "# table: c, ty", 2, "truncated: input ended inside line 3"},
		{"endless line", strings.Repeat("#", 2*MaxLineBytes), 0, "longer than"},
	}
	h := newPlugin(t, &HAProxy{Servers: []string{testSocketTag}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc := &shim.Accumulator{}
			g := &serverGather{h: h, ep: endpoint{kind: kindUnix, tag: testSocketTag, name: testSocketTag}, acc: acc, ts: time.Unix(1700000000, 0)}
			err := g.readOptional(optionalCommands[0], newLineReader(strings.NewReader(tt.answer)), "1")
			ms, _ := acc.Drain()
			if n := count(ms, "haproxy_table"); n != tt.tables {
				t.Errorf("%d tables emitted, want %d", n, tt.tables)
			}
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("err = %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("err = %v, want it to say %q", err, tt.err)
			}
		})
	}
}

// TestTablesRealHAProxy reads the stick tables of a real HAProxy, on
// every socket kind, after entries are set over its admin socket.
func TestTablesRealHAProxy(t *testing.T) {
	hp := testbed.NewHAProxy(t, testbed.HAProxyOptions{Extra: `backend sticky
	stick-table type ip size 1m expire 10m store gpc0
backend logins
	stick-table type string len 32 size 100 expire 10m store gpc0
`})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []string{"set table sticky key 10.0.0.1 data.gpc0 1", "set table sticky key 10.0.0.2 data.gpc0 1",
		"set table sticky key 10.0.0.3 data.gpc0 1", "set table logins key alice data.gpc0 1"} {
		if out, err := hp.Command(ctx, c); err != nil || strings.TrimSpace(out) != "" {
			t.Fatalf("%s: %q %v", c, out, err)
		}
	}
	want := map[string]tableWant{"sticky": {"ip", 1 << 20, 3}, "logins": {"string", 100, 1}}
	for _, tc := range []struct{ server, tag string }{
		{hp.AdminSocket, hp.AdminSocket},
		{hp.UserSocket, hp.UserSocket}, // "show table" needs no more than level user
		{"tcp://" + hp.TCPAddr, hp.TCPAddr},
	} {
		t.Run(tc.server, func(t *testing.T) {
			h := newPlugin(t, &HAProxy{Servers: []string{tc.server}})
			ms, errs := gather(t, h)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			checkTables(t, ms, tc.tag, want)
			checkScenario(t, ms, tc.tag)
		})
	}
	t.Run("proxies", func(t *testing.T) {
		h := newPlugin(t, &HAProxy{Servers: []string{hp.UserSocket}, Proxies: []string{"sticky", testbed.ScenarioBackend}})
		ms, errs := gather(t, h)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		checkTables(t, ms, hp.UserSocket, map[string]tableWant{"sticky": want["sticky"]})
	})
	t.Run("stats page", func(t *testing.T) {
		h := newPlugin(t, &HAProxy{Servers: []string{hp.StatsURL}})
		ms, errs := gather(t, h)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if n := count(ms, "haproxy_table"); n != 0 {
			t.Errorf("%d haproxy_table metrics from a stats page, which has no tables", n)
		}
	})
	t.Run("entries cleared", func(t *testing.T) {
		if out, err := hp.Command(ctx, "clear table sticky key 10.0.0.1"); err != nil || strings.TrimSpace(out) != "" {
			t.Fatalf("clear table: %q %v", out, err)
		}
		h := newPlugin(t, &HAProxy{Servers: []string{hp.UserSocket}})
		ms, errs := gather(t, h)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		checkTables(t, ms, hp.UserSocket, map[string]tableWant{"sticky": {"ip", 1 << 20, 2}, "logins": {"string", 100, 1}})
	})
}

func FuzzParseTable(f *testing.F) {
	addSeeds(f)
	for _, s := range []string{"# table: a, type: ip, size:1, used:0\n\n", "# table: ,,,:\n", "# table: a, size:-\n\n", "# table: a, type: ip, size:1, used:0"} {
		f.Add([]byte(s))
	}
	h := &HAProxy{Servers: []string{testSocketTag}}
	if err := h.Init(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		acc := &shim.Accumulator{}
		g := &serverGather{h: h, ep: endpoint{tag: testSocketTag}, acc: acc, ts: time.Unix(0, 0)}
		_ = g.readTables(newLineReader(bytes.NewReader(data)), "1") // any error is fine, a panic is not
		ms, _ := acc.Drain()
		if lines := bytes.Count(data, []byte{'\n'}) + 1; len(ms) > lines {
			t.Fatalf("%d tables from %d lines", len(ms), lines)
		}
		for _, m := range ms {
			if v, _ := m.GetField("size"); v.(int64) < 0 {
				t.Fatalf("negative size %v", v)
			}
		}
	})
}
