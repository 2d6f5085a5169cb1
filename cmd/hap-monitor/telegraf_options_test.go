package main

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// TestTelegrafOptionsSelectAsInTelegraf runs the real Telegraf v1.39.3's
// inputs.haproxy and hap-monitor -test with the same section on the same
// sockets, for each case of Telegraf's common options, and compares what
// they select: measurement names, tags with their values, field names.
// Values are left out (counters move between the two runs). Each case
// leaves out, with the options themselves, what only hap-monitor gathers
// (haproxy_info, the process_num tag, status.* fields), so that any other
// difference is a difference in the options' semantics.
func TestTelegrafOptionsSelectAsInTelegraf(t *testing.T) {
	hap, tg := hapMonitor(t), testbed.Telegraf(t)
	hp := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	dir := t.TempDir()
	servers := tomlList([]string{hp.AdminSocket, "tcp://" + hp.TCPAddr})
	ours := `
  namedrop = ["*_info"]
  tagexclude = ["process_num"]`

	for _, tc := range []struct{ name, options string }{
		{"namepass, fieldinclude, taginclude", `
  namepass = ["hap*"]
  fieldinclude = ["scur", "smax", "stot", "bin", "bout"]
  taginclude = ["proxy", "sv", "type", "host", "server"]`},
		{"tagpass, fieldexclude with globs", `
  namedrop = ["*_info"]
  tagexclude = ["process_num"]
  fieldexclude = ["status*", "servers.*", "*_*", "check_*", "last_*", "h*", "e*", "w*", "agent*", "c*", "r*", "qtime", "ttime", "ctime", "rtime", "mode", "addr", "cookie", "algo", "lastsess"]
  [inputs.haproxy.tagpass]
    type = ["backend", "frontend"]
    proxy = ["stats*"]`},
		{"tagdrop, name_override, name_prefix, tags", `
  namedrop = ["*_info"]
  tagexclude = ["process_num"]
  fieldinclude = ["scur", "stot"]
  name_override = "lb"
  name_prefix = "edge_"
  [inputs.haproxy.tags]
    role = "edge"
    proxy = "not replacing the input's own"
  [inputs.haproxy.tagdrop]
    sv = ["web-?", "FRONTEND"]`},
		{"fieldpass, fielddrop, tagpass on a section tag", `
  namedrop = ["*_info"]
  tagexclude = ["process_num"]
  fieldpass = ["scur", "smax", "bin"]
  fielddrop = ["smax"]
  [inputs.haproxy.tags]
    dc = "gva"
  [inputs.haproxy.tagpass]
    dc = ["gva"]
    sv = ["BACKEND"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			section := fmt.Sprintf("[agent]\n  hostname = \"lb1\"\n[[inputs.haproxy]]\n  servers = %s\n%s\n", servers, tc.options)
			if !strings.Contains(tc.options, "namedrop") {
				section = strings.Replace(section, "  servers", ours+"\n  servers", 1)
			}
			theirConf := writeFile(t, dir, "telegraf.conf", section)
			out, stderr, code := runBinary(t, tg, "", "--config", theirConf, "--test")
			if code != 0 {
				t.Fatalf("telegraf --test: exit %d\n%s", code, stderr)
			}
			var theirs strings.Builder
			for _, line := range strings.Split(out, "\n") {
				if l, ok := strings.CutPrefix(line, "> "); ok {
					theirs.WriteString(l + "\n")
				}
			}
			ourConf := writeFile(t, dir, "hap-monitor.conf", section)
			ourOut, ourErr, code := runBinary(t, hap, "", "-config", ourConf, "-test")
			if code != 0 {
				t.Fatalf("hap-monitor -test: exit %d\n%s", code, ourErr)
			}
			want, got := selection(t, theirs.String()), selection(t, ourOut)
			if len(want) == 0 {
				t.Fatalf("Telegraf selected nothing: the case tests nothing\n%s", out)
			}
			t.Logf("%d metrics selected alike, e.g. %s", len(want), want[0])
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("hap-monitor selected:\n%s\nTelegraf selected:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// selection reduces line protocol to one sorted line per metric: its name,
// its tags with values and its field names.
func selection(t *testing.T, lp string) []string {
	t.Helper()
	var rows []string
	dec := lineprotocol.NewDecoderWithBytes([]byte(lp))
	for dec.Next() {
		name, err := dec.Measurement()
		if err != nil {
			t.Fatalf("%v in\n%s", err, lp)
		}
		var tags []string
		for {
			k, v, err := dec.NextTag()
			if err != nil {
				t.Fatal(err)
			}
			if k == nil {
				break
			}
			tags = append(tags, string(k)+"="+string(v))
		}
		fields := fieldKeys(t, dec)
		sort.Strings(fields)
		rows = append(rows, string(name)+" "+strings.Join(tags, ",")+" "+strings.Join(fields, ","))
	}
	sort.Strings(rows)
	return rows
}

// TestTestOutputSortsFields checks that -test prints each metric's fields
// sorted by key, as Telegraf's --test does, so that two runs differ only
// in values and can be diffed.
func TestTestOutputSortsFields(t *testing.T) {
	hap := hapMonitor(t)
	hp := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	conf := writeFile(t, t.TempDir(), "test.conf", fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n", hp.AdminSocket))
	keys := func() []string {
		out, stderr, code := runBinary(t, hap, "", "-config", conf, "-test")
		if code != 0 {
			t.Fatalf("-test: exit %d\n%s", code, stderr)
		}
		var lines []string
		dec := lineprotocol.NewDecoderWithBytes([]byte(out))
		for dec.Next() {
			name, _ := dec.Measurement()
			fields := fieldKeys(t, dec)
			if !sort.StringsAreSorted(fields) {
				t.Errorf("%s: fields not sorted: %v", name, fields)
			}
			lines = append(lines, string(name)+" "+strings.Join(fields, ","))
		}
		return lines
	}
	// A string cell may be empty for a moment (last_chk while a check
	// runs), so two runs may differ by a field; never by a metric.
	first, second := keys(), keys()
	if len(first) == 0 || len(first) != len(second) {
		t.Errorf("two runs print %d and %d metrics", len(first), len(second))
	}
}

// fieldKeys reads the field keys of the decoder's current line, in order.
func fieldKeys(t *testing.T, dec *lineprotocol.Decoder) []string {
	t.Helper()
	var keys []string
	for {
		k, _, err := dec.NextField()
		if err != nil {
			t.Fatal(err)
		}
		if k == nil {
			return keys
		}
		keys = append(keys, string(k))
	}
}
