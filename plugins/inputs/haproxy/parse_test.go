package haproxy

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// rowWant is what a user checks on one row's metric.
type rowWant struct {
	proxy, sv, typ string
	state          string         // the status.X field at 1
	fields         map[string]any // exact values and types
	absent         []string       // fields that must not be there
}

func TestRecordedAnswers(t *testing.T) {
	tests := []struct {
		file string
		page bool
		rows int
		want []rowWant
	}{
		{
			file: "haproxy-2.6.12.txt", rows: 12,
			want: []rowWant{
				{proxy: "www.example-fe", sv: "FRONTEND", typ: "frontend", state: "OPEN",
					fields: map[string]any{"status": "OPEN", "slim": uint64(9981), "mode": "http", "http_response.2xx": uint64(1), "req_tot": uint64(1)},
					absent: []string{"qcur", "weight", "-", "algo", "pxname", "hrsp_2xx"}},
				{proxy: "app.v1", sv: "web-1", typ: "server", state: "UP",
					fields: map[string]any{"status": "UP", "check_status": "L4OK", "addr": "127.0.0.1:18081", "active_servers": uint64(1), "backup_servers": uint64(0), "stot": uint64(1), "bin": uint64(82), "bout": uint64(101)},
					absent: []string{"check_desc", "act", "bck", "cookie"}},
				{proxy: "app.v1", sv: "web-2", typ: "server", state: "DOWN",
					fields: map[string]any{"status": "DOWN", "check_status": "L4CON", "last_chk": "Connection refused", "lastsess": int64(-1), "chkfail": uint64(1)}},
				{proxy: "app.v1", sv: "web:3", typ: "server", state: "MAINT",
					fields: map[string]any{"status": "MAINT", "lastsess": int64(-1)}, absent: []string{"check_status"}},
				{proxy: "app.v1", sv: "web-4", typ: "server", state: "DRAIN", fields: map[string]any{"status": "DRAIN"}},
				{proxy: "app.v1", sv: "web-5", typ: "server", state: "NOCHECK",
					fields: map[string]any{"status": "no check"}, absent: []string{"chkfail", "chkdown", "downtime", "check_status"}},
				{proxy: "app.v1", sv: "BACKEND", typ: "backend", state: "UP",
					fields: map[string]any{"status": "UP", "active_servers": uint64(2), "http_response.2xx": uint64(1)}, absent: []string{"algo"}},
				{proxy: "db_tcp-1", sv: "FRONTEND", typ: "frontend", state: "OPEN",
					fields: map[string]any{"mode": "tcp"}, absent: []string{"http_response.2xx"}},
				{proxy: "db_tcp-1", sv: "pg.1", typ: "server", state: "UP",
					fields: map[string]any{"mode": "tcp", "check_health": uint64(4)}, absent: []string{"http_response.1xx"}},
			},
		},
		{
			file: "haproxy-2.6.12-page.csv", page: true, rows: 12,
			want: []rowWant{
				{proxy: "app.v1", sv: "web-2", typ: "server", state: "DOWN", fields: map[string]any{"status": "DOWN", "pid": uint64(1)}},
				{proxy: "stats", sv: "FRONTEND", typ: "frontend", state: "OPEN"},
			},
		},
		{
			file: "haproxy-1.5.csv", rows: 16,
			want: []rowWant{
				{proxy: "www.example-fe", sv: "FRONTEND", typ: "frontend", state: "OPEN", fields: map[string]any{"http_response.4xx": uint64(2)}},
				{proxy: "full-fe", sv: "FRONTEND", typ: "frontend", state: "FULL"},
				{proxy: "stopped:fe", sv: "FRONTEND", typ: "frontend", state: "STOP"},
				{proxy: "app.v1", sv: "web-1", typ: "server", state: "UP", fields: map[string]any{"last_chk": "HTTP status check returned code <3C>200<3E>", "check_code": uint64(200)}},
				{proxy: "app.v1", sv: "web-2", typ: "server", state: "DOWN", absent: []string{"check_code"}},
				{proxy: "app.v1", sv: "web:3", typ: "server", state: "MAINT", fields: map[string]any{"status": "MAINT (via app.v1/web-1)", "tracked": "app.v1/web-1"}},
				{proxy: "app.v1", sv: "web-4", typ: "server", state: "NOLB"},
				{proxy: "app.v1", sv: "web-5", typ: "server", state: "NOCHECK"},
				{proxy: "app.v1", sv: "web-6", typ: "server", state: "UP", fields: map[string]any{"status": "UP 1/3"}},
				{proxy: "app.v1", sv: "web-7", typ: "server", state: "DOWN", fields: map[string]any{"status": "DOWN 1/2"}},
				{proxy: "app.v1", sv: "web-8", typ: "server", state: "DRAIN"},
				{proxy: "app.v1", sv: "BACKEND", typ: "backend", state: "UP", fields: map[string]any{"cli_abort": uint64(1), "lastsess": int64(5)}},
				{proxy: "db_tcp-1", sv: "pg.1", typ: "server", state: "UP", absent: []string{"http_response.2xx", "req_tot"}},
				{proxy: "db_tcp-1", sv: "BACKEND", typ: "backend", state: "DOWN"},
				{proxy: "db_tcp-1", sv: "sock-1", typ: "listener", state: "WAITING"},
			},
		},
		{
			file: "haproxy-1.7.csv", rows: 7,
			want: []rowWant{
				{proxy: "www.example-fe", sv: "FRONTEND", typ: "frontend", state: "OPEN", fields: map[string]any{"conn_tot": uint64(50)}},
				{proxy: "app.v1", sv: "web-1", typ: "server", state: "UP",
					fields: map[string]any{"agent_status": "L7OK", "cookie": "w1", "agent_health": uint64(1)}, absent: []string{"agent_desc", "check_desc"}},
				{proxy: "app.v1", sv: "web-2", typ: "server", state: "DOWN", fields: map[string]any{"status": "DOWN (agent)"}},
				{proxy: "app.v1", sv: "web-3", typ: "server", state: "DRAIN", fields: map[string]any{"last_chk": "check, with a comma\nand a newline", "check_rise": uint64(2)}},
				{proxy: "app.v1", sv: "web-4", typ: "server", state: "MAINT"},
				{proxy: "app.v1", sv: "BACKEND", typ: "backend", state: "UP"},
			},
		},
		{
			file: "haproxy-3.x.csv", rows: 9,
			want: []rowWant{
				{proxy: "www.example-fe", sv: "FRONTEND", typ: "frontend", state: "OPEN", fields: map[string]any{"h1sess": uint64(40), "h1_bytes_in": uint64(900)}, absent: []string{"proto", "-"}},
				{proxy: "paused-fe", sv: "FRONTEND", typ: "frontend", state: "PAUSED"},
				{proxy: "app.v1", sv: "web-1", typ: "server", state: "UP", fields: map[string]any{"srid": uint64(1), "reqbin": uint64(100)}, absent: []string{"proto"}},
				{proxy: "app.v1", sv: "web-2", typ: "server", state: "MAINT", fields: map[string]any{"status": "MAINT (resolution)"}},
				{proxy: "app.v1", sv: "web-3", typ: "server", state: "NOLB"},
				{proxy: "app.v1", sv: "web-4", typ: "server", state: "DRAIN"},
				{proxy: "app.v1", sv: "web-5", typ: "server", state: "OTHER", fields: map[string]any{"status": "SOMETHING-NEW"}},
				{proxy: "app.v1", sv: "BACKEND", typ: "backend", state: "UP", fields: map[string]any{"agg_server_status": uint64(1)}},
				{proxy: "www.example-fe", sv: "sock-1", typ: "listener", state: "FULL"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			h := newPlugin(t, &HAProxy{Servers: []string{testSocketTag}})
			ms, err := readAnswer(t, h, readTestdata(t, tt.file), tt.page)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if n := count(ms, "haproxy"); n != tt.rows {
				t.Errorf("got %d haproxy metrics, want %d", n, tt.rows)
			}
			for _, w := range tt.want {
				checkRow(t, ms, w)
			}
		})
	}
}

func checkRow(t *testing.T, ms []telegraf.Metric, w rowWant) {
	t.Helper()
	m := row(ms, w.proxy, w.sv)
	if m == nil {
		t.Errorf("no metric for %s/%s", w.proxy, w.sv)
		return
	}
	tags := m.Tags()
	wantTags := map[string]string{"server": testSocketTag, "proxy": w.proxy, "sv": w.sv, "type": w.typ, "process_num": "1"}
	if len(tags) != len(wantTags) {
		t.Errorf("%s/%s: tags %v, want %v", w.proxy, w.sv, tags, wantTags)
	}
	for k, v := range wantTags {
		if tags[k] != v {
			t.Errorf("%s/%s: tag %s = %q, want %q", w.proxy, w.sv, k, tags[k], v)
		}
	}
	vocab := ServerStates
	if w.typ == "frontend" || w.typ == "listener" {
		vocab = FrontendStates
	}
	checkStatus(t, m, vocab, w.state)
	for k, v := range w.fields {
		got, ok := m.GetField(k)
		if !ok || got != v {
			t.Errorf("%s/%s: field %s = %#v (present %v), want %#v", w.proxy, w.sv, k, got, ok, v)
		}
	}
	for _, k := range w.absent {
		if v, ok := m.GetField(k); ok {
			t.Errorf("%s/%s: field %s = %#v, want absent", w.proxy, w.sv, k, v)
		}
	}
}

func TestRecordedInfo(t *testing.T) {
	h := newPlugin(t, &HAProxy{Servers: []string{testSocketTag}})
	ms, err := readAnswer(t, h, readTestdata(t, "haproxy-2.6.12.txt"), false)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(ms, "haproxy_info"); n != 1 {
		t.Fatalf("got %d haproxy_info metrics, want 1", n)
	}
	m := find(ms, "haproxy_info", nil)
	if got := m.Tags(); len(got) != 2 || got["server"] != testSocketTag || got["process_num"] != "1" {
		t.Errorf("tags = %v", got)
	}
	want := map[string]any{"version": "2.6.12-1+deb12u4", "Process_num": int64(1), "Nbthread": int64(2), "Maxconn": int64(9981), "Unstoppable Jobs": int64(0), "Ulimit-n": int64(19999)}
	for k, v := range want {
		if got, ok := m.GetField(k); !ok || got != v {
			t.Errorf("field %s = %#v, want %#v", k, got, v)
		}
	}
	for _, k := range []string{"Name", "Version", "Uptime", "Release_date", "node", "Build info"} {
		if _, ok := m.GetField(k); ok {
			t.Errorf("string field %s should be left out", k)
		}
	}
	for _, f := range m.FieldList() {
		if _, ok := f.Value.(int64); !ok && f.Key != "version" {
			t.Errorf("field %s is %T, want int64", f.Key, f.Value)
		}
	}
	// The fields come in the answer's order, version last, every time:
	// two gathers print the same line.
	var keys []string
	for _, f := range m.FieldList() {
		keys = append(keys, f.Key)
	}
	if len(keys) < 3 || keys[0] != "Nbthread" || keys[1] != "Nbproc" || keys[2] != "Process_num" || keys[len(keys)-1] != "version" {
		t.Errorf("fields in the order %v, want the answer's (Nbthread, Nbproc, Process_num, ...) then version", keys)
	}
}

func TestKeepFieldNames(t *testing.T) {
	h := newPlugin(t, &HAProxy{Servers: []string{testSocketTag}, KeepFieldNames: true})
	ms, err := readAnswer(t, h, readTestdata(t, "haproxy-2.6.12.txt"), false)
	if err != nil {
		t.Fatal(err)
	}
	m := find(ms, "haproxy", map[string]string{"pxname": "app.v1", "svname": "web-1"})
	if m == nil {
		t.Fatal("no metric tagged pxname=app.v1 svname=web-1")
	}
	if _, ok := m.GetTag("proxy"); ok {
		t.Error("tag proxy present with keep_field_names")
	}
	for _, k := range []string{"act", "bck", "hrsp_2xx", "cli_abrt", "srv_abrt"} {
		if _, ok := m.GetField(k); !ok {
			t.Errorf("field %s missing with keep_field_names", k)
		}
	}
	if _, ok := m.GetField("active_servers"); ok {
		t.Error("renamed field active_servers present with keep_field_names")
	}
}

func TestFieldFilterAndTypes(t *testing.T) {
	h := newPlugin(t, &HAProxy{Servers: []string{"http://127.0.0.1:1/stats"},
		IncludeFields: []string{"status*", "stot", "Idle_pct", "version"}, ExcludeFields: []string{"status.OTHER"},
		Types: []string{"server"}, Proxies: []string{"app.v1"}})
	ms, err := readAnswer(t, h, readTestdata(t, "haproxy-2.6.12-page.csv"), true)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(ms, "haproxy"); n != 5 {
		t.Errorf("got %d rows, want the 5 servers of app.v1", n)
	}
	for _, m := range ms {
		if typ, _ := m.GetTag("type"); typ != "server" {
			t.Errorf("%s: type %s passed the types filter", describeMetric(m), typ)
		}
		for _, f := range m.FieldList() {
			if f.Key != "stot" && f.Key != "status" && (!strings.HasPrefix(f.Key, "status.") || f.Key == "status.OTHER") {
				t.Errorf("%s: field %s passed the field filter", describeMetric(m), f.Key)
			}
		}
	}
	h2 := newPlugin(t, &HAProxy{Servers: []string{testSocketTag}, IncludeFields: []string{"Idle_pct", "version"}})
	ms, err = readAnswer(t, h2, readTestdata(t, "haproxy-2.6.12.txt"), false)
	if err != nil {
		t.Fatal(err)
	}
	info := find(ms, "haproxy_info", nil)
	if info == nil || len(info.FieldList()) != 2 {
		t.Fatalf("haproxy_info with include_fields [Idle_pct version]: %v", info)
	}
	if count(ms, "haproxy") != 0 {
		t.Error("haproxy rows with no field left were emitted")
	}
}

func TestNormalizeStatus(t *testing.T) {
	tests := []struct {
		in    string
		vocab []string
		want  string
		known bool
	}{
		{"UP", ServerStates, "UP", true},
		{"UP 1/3", ServerStates, "UP", true},
		{"DOWN 1/2", ServerStates, "DOWN", true},
		{"DOWN (agent)", ServerStates, "DOWN", true},
		{"NOLB 2/3", ServerStates, "NOLB", true},
		{"DRAIN (agent)", ServerStates, "DRAIN", true},
		{"MAINT", ServerStates, "MAINT", true},
		{"MAINT (via app/web-1)", ServerStates, "MAINT", true},
		{"MAINT(via)", ServerStates, "MAINT", true},
		{"MAINT (resolution)", ServerStates, "MAINT", true},
		{"no check", ServerStates, "NOCHECK", true},
		{"OPEN", ServerStates, "OTHER", false},
		{"", ServerStates, "OTHER", false},
		{"UPPER", ServerStates, "OTHER", false},
		{"OPEN", FrontendStates, "OPEN", true},
		{"FULL", FrontendStates, "FULL", true},
		{"PAUSED", FrontendStates, "PAUSED", true},
		{"STOP", FrontendStates, "STOP", true},
		{"WAITING", FrontendStates, "WAITING", true},
		{"no check", FrontendStates, "OTHER", false},
		{"UP", FrontendStates, "OTHER", false},
	}
	for _, tt := range tests {
		got, known := normalizeStatus([]byte(tt.in), tt.vocab)
		if got != tt.want || known != tt.known {
			t.Errorf("normalizeStatus(%q) = %s, %v; want %s, %v", tt.in, got, known, tt.want, tt.known)
		}
	}
}

func TestUnknownStatusLoggedOnce(t *testing.T) {
	var logs testbed.SyncBuffer
	h := newPlugin(t, &HAProxy{Servers: []string{testSocketTag}, Log: logger.New(logger.NewSink(&logs, telegraf.Debug), "inputs.haproxy")})
	data := readTestdata(t, "haproxy-3.x.csv")
	for i := 0; i < 2; i++ {
		if _, err := readAnswer(t, h, data, false); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), `"SOMETHING-NEW"`); n != 2 { // once per answer
		t.Errorf("unknown status logged %d times over 2 answers, want 2:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "W! [inputs.haproxy]") {
		t.Errorf("unknown status not logged as a warning:\n%s", logs.String())
	}
}

// TestTruncated cuts the recorded answer at every byte inside its CSV and
// checks that the complete rows before the cut are emitted and the error
// names the row.
func TestTruncated(t *testing.T) {
	full := readTestdata(t, "haproxy-2.6.12.txt")
	statStart := strings.Index(string(full), "\n# ") + 1
	headerEnd := statStart + strings.Index(string(full[statStart:]), "\n") + 1
	statEnd := len(full) - 1 // show table's answer is the last empty line: no table
	h := newPlugin(t, &HAProxy{Servers: []string{testSocketTag}})
	for cut := statStart; cut < statEnd-1; cut++ {
		data := full[:cut]
		ms, err := readAnswer(t, h, data, false)
		var te *TruncatedError
		if !errors.As(err, &te) {
			t.Fatalf("cut at %d: error %v, want a *TruncatedError", cut, err)
		}
		complete := strings.Count(string(data[statStart:]), "\n") - 1 // minus the header
		if complete < 0 {
			complete = 0
		}
		if n := count(ms, "haproxy"); n != complete {
			t.Fatalf("cut at %d: %d rows emitted, want the %d complete ones (err %v)", cut, n, complete, err)
		}
		midRow := cut > headerEnd && data[cut-1] != '\n'
		if midRow && te.Row != complete+1 {
			t.Fatalf("cut at %d: error names row %d, want %d: %v", cut, te.Row, complete+1, err)
		}
	}
	// Cut on a row boundary: the closing empty line is missing.
	lastRow := strings.LastIndex(string(full[:statEnd-1]), "\n")
	_, err := readAnswer(t, h, full[:lastRow], false)
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("answer without its last row and empty line: err %v", err)
	}
	// The show stat answer whole, show table's missing.
	ms, err := readAnswer(t, h, full[:statEnd], false)
	var te *TruncatedError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "show table") {
		t.Errorf("answer without show table's: err %v, want a *TruncatedError naming show table", err)
	}
	if n := count(ms, "haproxy"); n != 12 {
		t.Errorf("answer without show table's: %d rows emitted, want 12", n)
	}
}

// TestRowErrorsNameTheServer: a row with the wrong number of cells is
// left out and reported with its row number, proxy and server; the rows
// around it are kept. A row cut by the end of input names them when they
// arrived whole.
func TestRowErrorsNameTheServer(t *testing.T) {
	data := readTestdata(t, "haproxy-1.5.csv")
	lines := strings.SplitAfter(string(data), "\n")
	web1 := strings.TrimSuffix(lines[4], ",\n") // the 4th data row, app.v1/web-1
	tests := []struct {
		name    string
		edit    func(lines []string) []string
		row     int
		want    string
		rows    int  // rows emitted
		notWant bool // the message must not name a server
	}{
		{"too few cells", func(l []string) []string { l[4] = "app.v1,web-1,0,0,\n"; return l },
			4, `row 4 (proxy "app.v1", server "web-1") left out: 5 cells, the header has 63`, 15, false},
		{"too many cells", func(l []string) []string { l[4] = web1 + ",1,2,\n"; return l },
			4, `row 4 (proxy "app.v1", server "web-1") left out: 65 cells, the header has 63`, 15, false},
		{"quoted names", func(l []string) []string {
			l[4] = `"app,v1","web ""1""",0,` + "\n"
			return l
		}, 4, `row 4 (proxy "app,v1", server "web \"1\"") left out`, 15, false},
		{"input ends after the names", func(l []string) []string { return append(l[:4], "app.v1,web-1,0,1") },
			4, `answer truncated at row 4 (proxy "app.v1", server "web-1"): input ended mid-row (4 of 63 cells)`, 3, false},
		{"input ends inside the server name", func(l []string) []string { return append(l[:4], "app.v1,we") },
			4, "answer truncated at row 4: input ended mid-row (2 of 63 cells)", 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			edited := tt.edit(slices.Clone(lines))
			h := newPlugin(t, &HAProxy{Servers: []string{testSocketTag}})
			ms, err := readAnswer(t, h, []byte(strings.Join(edited, "")), false)
			var te *TruncatedError
			if !errors.As(err, &te) || te.Row != tt.row {
				t.Fatalf("err = %v, want a *TruncatedError at row %d", err, tt.row)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to say %q", err, tt.want)
			}
			if tt.notWant && (te.Proxy != "" || te.Server != "" || strings.Contains(err.Error(), "proxy")) {
				t.Errorf("err = %q names a server from a cut cell", err)
			}
			if n := count(ms, "haproxy"); n != tt.rows {
				t.Errorf("%d rows emitted, want %d", n, tt.rows)
			}
			if row(ms, "app.v1", "web-1") != nil {
				t.Error("the faulty row was emitted")
			}
		})
	}
}

func TestNotCSVAndLongLines(t *testing.T) {
	h := newPlugin(t, &HAProxy{Servers: []string{testSocketTag}})
	tests := []struct {
		name, data, want string
	}{
		{"unknown command", "Unknown command, but maybe one of the following ones is a better match:\n  show fd\n\n", "not show info"},
		{"no stat header", "Name: HAProxy\nProcess_num: 1\n\nPermission denied\n\n", "not show stat CSV"},
		{"endless line", "Name: HAProxy\n" + strings.Repeat("x", 3*MaxLineBytes), "longer than"},
		{"endless row", "Name: HAProxy\n\n# pxname,svname,\n" + strings.Repeat("a,", 2*MaxLineBytes), "longer than"},
		{"endless quoted cell", "# pxname,svname,\n\"" + strings.Repeat("a\n", MaxLineBytes), "longer than"},
		{"empty", "", "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := readAnswer(t, h, []byte(tt.data), false)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to say %q", err, tt.want)
			}
			if count(ms, "haproxy") != 0 {
				t.Errorf("rows emitted from garbage: %v", ms)
			}
		})
	}
}

func TestQuotedCells(t *testing.T) {
	sr := newStatReader(newLineReader(strings.NewReader("")), false)
	tests := []struct{ in, want string }{
		{`a,b,`, "a|b|"},
		{`"a,b",c`, "a,b|c"},
		{`"say ""hi""",x`, `say "hi"|x`},
		{`"",`, "|"},
		{`x,"unterminated`, "x|unterminated"},
	}
	for _, tt := range tests {
		cells, err := sr.split([]byte(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(cells))
		for i, c := range cells {
			parts[i] = string(c)
		}
		if got := strings.Join(parts, "|"); got != tt.want {
			t.Errorf("split(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
