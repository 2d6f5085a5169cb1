package graphite_statsd

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

// The golden test: a real HAProxy 2.6.12 answer to "show stat" and
// "show info" (testdata), turned into the metrics the haproxy input emits
// and serialised with the default configuration, gives the lines the
// original HAP-Monitor sent for the same answer, with its dotted-name bug
// fixed: paths exactly, values equal as numbers.

const (
	goldenScope = "my.system.stats.haproxy"
	goldenHost  = "web01" // the original used the FQDN's first label
	goldenTime  = 1700000000
)

// originalFields are the show stat columns the original sent ("rate" was
// added by its shipped command line).
var originalFields = []string{"scur", "qcur", "chkfail", "status", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx",
	"hrsp_4xx", "hrsp_5xx", "req_rate", "qtime", "ctime", "rtime", "ttime", "rate"}

type csvTable struct {
	header []string
	rows   [][]string
}

func readStat(t *testing.T) csvTable {
	t.Helper()
	data, err := os.ReadFile("testdata/show_stat.csv")
	if err != nil {
		t.Fatal(err)
	}
	var tab csvTable
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		cells := strings.Split(strings.TrimSuffix(line, ","), ",")
		if strings.HasPrefix(line, "# ") {
			cells[0] = strings.TrimPrefix(cells[0], "# ")
			tab.header = cells
			continue
		}
		tab.rows = append(tab.rows, cells)
	}
	if len(tab.header) == 0 || len(tab.rows) == 0 {
		t.Fatal("testdata/show_stat.csv: no header or no rows")
	}
	return tab
}

func readInfo(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("testdata/show_info.txt")
	if err != nil {
		t.Fatal(err)
	}
	info := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			info[k] = v
		}
	}
	return info
}

// originalLines derives what the original sent for the answer:
// path -> value. Names join raw except that a '.' inside a name no longer
// adds a level (it becomes '_', as the fixed output does).
func originalLines(tab csvTable, info map[string]string) map[string]float64 {
	out := map[string]float64{}
	pnum := info["Process_num"]
	base := goldenScope + "." + goldenHost + "." + pnum
	if v, err := strconv.ParseFloat(info["Idle_pct"], 64); err == nil {
		out[base+".Idle_pct"] = v
	}
	fix := func(s string) string { return strings.ReplaceAll(s, ".", "_") }
	for _, row := range tab.rows {
		cell := map[string]string{}
		for i, h := range tab.header {
			if i < len(row) {
				cell[h] = row[i]
			}
		}
		path := base + "." + fix(cell["pxname"]) + "." + fix(cell["svname"])
		for _, f := range originalFields {
			if f == "status" {
				st := cell["status"]
				if pnum == "1" && (st == "UP" || st == "DOWN" || st == "MAINT") {
					for _, w := range []string{"UP", "DOWN", "MAINT"} {
						out[path+".status."+w] = b2f(st == w)
					}
				}
				continue
			}
			if v, err := strconv.ParseFloat(cell[f], 64); err == nil {
				out[path+"."+f] = v
			}
		}
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var renames = map[string]string{
	"act": "active_servers", "bck": "backup_servers", "cli_abrt": "cli_abort", "srv_abrt": "srv_abort",
	"hrsp_1xx": "http_response.1xx", "hrsp_2xx": "http_response.2xx", "hrsp_3xx": "http_response.3xx",
	"hrsp_4xx": "http_response.4xx", "hrsp_5xx": "http_response.5xx", "hrsp_other": "http_response.other",
}

var stringCols = map[string]bool{"status": true, "check_status": true, "last_chk": true, "mode": true,
	"tracked": true, "agent_status": true, "last_agt": true, "addr": true, "cookie": true, "algo": true,
	"check_desc": true, "agent_desc": true}

// inputMetrics builds the metrics the haproxy input emits for the answer.
func inputMetrics(tab csvTable, info map[string]string, keepNames bool) []telegraf.Metric {
	tm := time.Unix(goldenTime, 0)
	pnum := info["Process_num"]
	var out []telegraf.Metric
	for _, row := range tab.rows {
		tags := map[string]string{"server": "/run/haproxy/admin.sock", "process_num": pnum, "host": goldenHost}
		fields := map[string]any{}
		var rowType int
		for i, h := range tab.header {
			if i >= len(row) || row[i] == "" {
				continue
			}
			v := row[i]
			switch {
			case h == "pxname" || h == "svname":
				name := h
				if !keepNames {
					name = map[string]string{"pxname": "proxy", "svname": "sv"}[h]
				}
				tags[name] = v
				continue
			case h == "type":
				rowType, _ = strconv.Atoi(v)
				tags["type"] = []string{"frontend", "backend", "server", "listener"}[rowType]
				continue
			}
			name := h
			if r, ok := renames[h]; ok && !keepNames {
				name = r
			}
			switch {
			case stringCols[h]:
				fields[name] = v
			case h == "lastsess":
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					fields[name] = n
				}
			default:
				if n, err := strconv.ParseUint(v, 10, 64); err == nil {
					fields[name] = n
				}
			}
		}
		vocab := []string{"UP", "DOWN", "NOLB", "DRAIN", "MAINT", "NOCHECK", "OTHER"}
		if rowType == 0 || rowType == 3 {
			vocab = []string{"OPEN", "FULL", "PAUSED", "STOP", "WAITING", "OTHER"}
		}
		state := strings.Fields(fields["status"].(string))[0]
		if fields["status"] == "no check" {
			state = "NOCHECK"
		}
		if !slices.Contains(vocab, state) {
			state = "OTHER"
		}
		for _, s := range vocab {
			fields["status."+s] = uint64(b2f(s == state))
		}
		out = append(out, metric.New("haproxy", tags, fields, tm))
	}
	infoFields := map[string]any{}
	for k, v := range info {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			infoFields[k] = n
		} else if k == "Version" {
			infoFields["version"] = v
		}
	}
	out = append(out, metric.New("haproxy_info",
		map[string]string{"server": "/run/haproxy/admin.sock", "process_num": pnum, "host": goldenHost}, infoFields, tm))
	return out
}

// sentLines serialises metrics with the default configuration and the
// original's scope as prefix: path -> value.
func sentLines(t *testing.T, metrics []telegraf.Metric) map[string]float64 {
	t.Helper()
	o := newTestOutput(t, func(o *GraphiteStatsd) { o.Prefix = goldenScope })
	got := map[string]float64{}
	for _, line := range serialize(o, metrics...) {
		parts := strings.Fields(line)
		if len(parts) != 3 || parts[2] != strconv.Itoa(goldenTime) {
			t.Fatalf("malformed line %q", line)
		}
		v, err := strconv.ParseFloat(parts[1], 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if _, dup := got[parts[0]]; dup {
			t.Fatalf("path %s sent twice", parts[0])
		}
		got[parts[0]] = v
	}
	return got
}

// fieldOf returns the field part of a path the original could have sent.
func fieldOf(path string) string {
	if i := strings.Index(path, ".status."); i >= 0 {
		return "status"
	}
	return path[strings.LastIndexByte(path, '.')+1:]
}

func TestGoldenOriginalPaths(t *testing.T) {
	tab, info := readStat(t), readInfo(t)
	want := originalLines(tab, info)
	got := sentLines(t, inputMetrics(tab, info, true))

	if len(want) < 50 {
		t.Fatalf("the fixture gives only %d original lines", len(want))
	}
	for path, v := range want {
		g, ok := got[path]
		if !ok {
			t.Errorf("missing %s (the original sent %v)", path, v)
			continue
		}
		if g != v {
			t.Errorf("%s = %v, the original sent %v", path, g, v)
		}
	}
	// Among the fields the original sent, nothing more: only the status of
	// rows whose state the original dropped is new.
	original := map[string]bool{}
	for _, f := range originalFields {
		original[f] = true
	}
	for path := range got {
		if f := fieldOf(path); original[f] && f != "status" {
			if _, ok := want[path]; !ok {
				t.Errorf("sent %s, which the original did not", path)
			}
		}
	}
	// What the original dropped and the fixed one keeps.
	for path, v := range map[string]float64{
		goldenScope + ".web01.1.app_v1.web-4.status.DRAIN":           1,
		goldenScope + ".web01.1.app_v1.web-5.status.NOCHECK":         1,
		goldenScope + ".web01.1.www_example-fe.FRONTEND.status.OPEN": 1,
		goldenScope + ".web01.1.app_v1.web:3.status.MAINT":           1,
		goldenScope + ".web01.1.db_tcp-1.pg_1.scur":                  0,
	} {
		if g, ok := got[path]; !ok || g != v {
			t.Errorf("%s = %v (sent: %v), want %v", path, g, ok, v)
		}
	}
}

// With the input's default names (proxy/sv tags, http_response.Nxx) the
// paths of the fields Telegraf does not rename are the original's too.
func TestGoldenTelegrafNames(t *testing.T) {
	tab, info := readStat(t), readInfo(t)
	want := originalLines(tab, info)
	got := sentLines(t, inputMetrics(tab, info, false))
	n := 0
	for path, v := range want {
		path = strings.Replace(path, ".hrsp_", ".http_response.", 1)
		if g, ok := got[path]; !ok || g != v {
			t.Errorf("%s = %v (sent: %v), the original sent %v", path, g, ok, v)
		}
		n++
	}
	if n != len(want) {
		t.Fatal("not every original line was checked")
	}
}
