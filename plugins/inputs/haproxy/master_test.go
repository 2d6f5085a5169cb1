package haproxy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/serializers/graphite"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/contract"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// Answers of a real HAProxy 2.6.12 master CLI ("show proc").
const (
	procFresh = `#<PID>          <type>          <reloads>       <uptime>        <version>      
8392            master          0 [failed: 0]   0d00h00m01s     2.6.12-1+deb12u4
# workers
8393            worker          0               0d00h00m01s     2.6.12-1+deb12u4
# programs

`
	procTwoOld = `#<PID>          <type>          <reloads>       <uptime>        <version>      
8392            master          2 [failed: 0]   0d00h00m08s     2.6.12-1+deb12u4
# workers
8600            worker          0               0d00h00m00s     2.6.12-1+deb12u4
# old workers
8529            worker          1               0d00h00m04s     2.6.12-1+deb12u4
8393            worker          2               0d00h00m08s     2.6.12-1+deb12u4
# programs

`
	// After two successful reloads, then a failed one: every process
	// counted it, and the master says so.
	procFailed = `#<PID>          <type>          <reloads>       <uptime>        <version>      
8392            master          5 [failed: 1]   0d00h01m45s     2.6.12-1+deb12u4
# workers
12476           worker          1               0d00h00m06s     2.6.12-1+deb12u4
# old workers
8529            worker          4               0d01h01m41s     2.6.12-1+deb12u4
# programs

`
	// HAProxy 2.0's, from its management guide: a relative PID column,
	// no failed count, two current workers (nbproc 2).
	proc20 = `#<PID>          <type>          <relative PID>  <reloads>       <uptime>        <version>
1162            master          0               5               0d00h02m07s     2.0-dev7-0124c9-7
# workers
1271            worker          1               0               0d00h00m00s     2.0-dev7-0124c9-7
1272            worker          2               0               0d00h00m00s     2.0-dev7-0124c9-7
# old workers
1233            worker          [was: 1]        3               0d00h00m43s     2.0-dev3-6019f6-289
# programs
1244            foo             0               0d00h00m00s     -

`
)

func TestParseShowProc(t *testing.T) {
	type want struct {
		master         procEntry
		current, old   []int // pids
		currentReloads []int64
		oldReloads     []int64
		oldTags        []string
	}
	tests := []struct {
		name   string
		answer string
		want   want
	}{
		{"fresh", procFresh, want{master: procEntry{pid: 8392, reloads: 0, failed: 0, uptime: 1, version: "2.6.12-1+deb12u4"},
			current: []int{8393}, currentReloads: []int64{0}}},
		{"two old workers", procTwoOld, want{master: procEntry{pid: 8392, reloads: 2, failed: 0, uptime: 8, version: "2.6.12-1+deb12u4"},
			current: []int{8600}, currentReloads: []int64{0}, old: []int{8529, 8393}, oldReloads: []int64{1, 2}, oldTags: []string{"old1", "old2"}}},
		{"after a failed reload", procFailed, want{master: procEntry{pid: 8392, reloads: 5, failed: 1, uptime: 105, version: "2.6.12-1+deb12u4"},
			current: []int{12476}, currentReloads: []int64{1}, old: []int{8529}, oldReloads: []int64{4}, oldTags: []string{"old1"}}},
		{"2.0", proc20, want{master: procEntry{pid: 1162, reloads: 5, failed: -1, uptime: 127, version: "2.0-dev7-0124c9-7"},
			current: []int{1271, 1272}, currentReloads: []int64{0, 0}, old: []int{1233}, oldReloads: []int64{3}, oldTags: []string{"old1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseShowProc(newLineReader(strings.NewReader(tt.answer)))
			if err != nil {
				t.Fatal(err)
			}
			if p.master != tt.want.master {
				t.Errorf("master %+v, want %+v", p.master, tt.want.master)
			}
			pids := func(es []procEntry) (out []int) {
				for _, e := range es {
					out = append(out, e.pid)
				}
				return out
			}
			reloads := func(es []procEntry) (out []int64) {
				for _, e := range es {
					out = append(out, e.reloads)
				}
				return out
			}
			if !slices.Equal(pids(p.current), tt.want.current) || !slices.Equal(reloads(p.current), tt.want.currentReloads) {
				t.Errorf("current %+v, want pids %v reloads %v", p.current, tt.want.current, tt.want.currentReloads)
			}
			if !slices.Equal(pids(p.old), tt.want.old) || !slices.Equal(reloads(p.old), tt.want.oldReloads) {
				t.Errorf("old %+v, want pids %v reloads %v", p.old, tt.want.old, tt.want.oldReloads)
			}
			var tags []string
			names := oldWorkerTags(p.old)
			for _, o := range p.old {
				tags = append(tags, names[o.pid])
			}
			if !slices.Equal(tags, tt.want.oldTags) {
				t.Errorf("old worker tags %v, want %v", tags, tt.want.oldTags)
			}
		})
	}
}

func TestParseShowProcErrors(t *testing.T) {
	tests := []struct{ name, answer, err string }{
		{"empty", "", "empty answer"},
		{"not show proc", "Unknown command, but maybe one of the following ones is a better match:\n\n", "not show proc's"},
		{"no empty line", strings.TrimSuffix(procFresh, "\n"), "no closing empty line"},
		{"no master", "#<PID> <type> <reloads> <uptime> <version>\n# workers\n1 worker 0 0d00h00m01s 2.6\n\n", "no master"},
		{"no reloads column", "#<PID> <type> <uptime>\n1 master 0d00h00m01s\n\n", "no <reloads> column"},
		{"bad pid", "#<PID> <type> <reloads>\nx master 0\n\n", `line 2: pid "x" is not a pid`},
		{"bad reloads", "#<PID> <type> <reloads>\n1 master -1\n\n", `line 2: reloads "-1" is not a count`},
		{"bad failed", "#<PID> <type> <reloads>\n1 master 0 [failed: x]\n\n", `"[failed: x]" is not a count`},
	}
	for _, tt := range tests {
		_, err := parseShowProc(newLineReader(strings.NewReader(tt.answer)))
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: err = %v, want it to say %q", tt.name, err, tt.err)
		}
	}
}

func TestParseProcUptime(t *testing.T) {
	for in, want := range map[string]int64{"0d00h00m00s": 0, "0d00h02m07s": 127, "1d01h01m01s": 90061, "12d00h00m00s": 1036800} {
		if got, ok := parseProcUptime(in); !ok || got != want {
			t.Errorf("parseProcUptime(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-", "d00h", "1x", "0d00h00m00s5"} {
		if _, ok := parseProcUptime(in); ok {
			t.Errorf("parseProcUptime(%q) accepted", in)
		}
	}
}

func TestReadStatsSocket(t *testing.T) {
	tests := map[string]string{
		"# socket lvl processes\nunix@/run/haproxy/admin.sock admin all\nunix@/run/haproxy/user.sock user all\nsockpair@4 admin all\n\n": "/run/haproxy/admin.sock",
		"# socket lvl processes\nipv4@127.0.0.1:9999 admin all\nsockpair@4 admin all\n\n":                                                "127.0.0.1:9999",
		"# socket lvl processes\nsockpair@4 admin all\n\n":                                                                               "",
		"Can't find the target PID matching the prefix '@1'\n":                                                                           "",
		"Unknown command, but maybe one of the following ones is a better match:\n  ...\n\n":                                             "",
		"": "",
	}
	for answer, want := range tests {
		if got := readStatsSocket(newLineReader(strings.NewReader(answer))); got != want {
			t.Errorf("readStatsSocket(%q) = %q, want %q", answer, got, want)
		}
	}
}

func TestParseMasterServer(t *testing.T) {
	tests := []struct {
		entry           string
		kind            endpointKind
		addr, tag, name string
		err             string
	}{
		{"master:/run/haproxy-master.sock", kindUnix, "/run/haproxy-master.sock", "/run/haproxy-master.sock", "master:/run/haproxy-master.sock", ""},
		{"master:unix:///run/haproxy-master.sock", kindUnix, "/run/haproxy-master.sock", "/run/haproxy-master.sock", "master:/run/haproxy-master.sock", ""},
		{"master:/run/haproxy-*.sock", kindUnix, "/run/haproxy-*.sock", "/run/haproxy-*.sock", "master:/run/haproxy-*.sock", ""},
		{"master:tcp://127.0.0.1:9999", kindTCP, "127.0.0.1:9999", "127.0.0.1:9999", "master:tcp://127.0.0.1:9999", ""},
		{"master:", 0, "", "", "", "a master CLI is"},
		{"master:http://127.0.0.1/stats", 0, "", "", "", "a master CLI is"},
		{"master:master:/x", 0, "", "", "", "a master CLI is"},
		{"master:tcp://nohost", 0, "", "", "", "missing port"},
		{"master:/run/[", 0, "", "", "", "bad glob"},
	}
	for _, tt := range tests {
		ep, err := parseServer(tt.entry)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err = %v, want it to say %q", tt.entry, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.entry, err)
			continue
		}
		if !ep.master || ep.kind != tt.kind || ep.addr != tt.addr || ep.tag != tt.tag || ep.name != tt.name {
			t.Errorf("%q: %+v", tt.entry, ep)
		}
	}
}

// TestMasterGlob expands a "master:" glob to each master it matches.
func TestMasterGlob(t *testing.T) {
	dir := testbed.ShortTempDir(t)
	for _, n := range []string{"a-master.sock", "b-master.sock"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ep, err := parseServer("master:" + filepath.Join(dir, "*-master.sock"))
	if err != nil {
		t.Fatal(err)
	}
	eps, err := ep.expand()
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 2 || !eps[0].master || !eps[1].master || eps[1].name != "master:"+filepath.Join(dir, "b-master.sock") {
		t.Errorf("expanded to %+v", eps)
	}
}

// fakeMaster answers as a HAProxy 2.6.12 master CLI does: "show proc"
// with procs, and the recorded 2.6.12 answer for "@!<pid>" of a known
// pid, its show info saying that pid, and "Stopping: 0" for the pids of
// serving, "Stopping: 1" for the others; "Can't find the target PID ..."
// for a pid not known.
func fakeMaster(t *testing.T, procs string, serving []int, known ...int) *testbed.FakeSocket {
	t.Helper()
	answer := readTestdata(t, "haproxy-2.6.12.txt")
	stopping := bytes.Replace(answer, []byte("\nStopping: 0\n"), []byte("\nStopping: 1\n"), 1)
	if bytes.Equal(stopping, answer) {
		t.Fatal("the recorded answer has no Stopping: 0 line")
	}
	return testbed.NewFakeSocket(t, func(c net.Conn, cmd string) {
		if strings.HasPrefix(cmd, "show proc;") {
			fmt.Fprint(c, procs+"# socket lvl processes\nunix@/run/haproxy/admin.sock admin all\nsockpair@4 admin all\n\n")
			return
		}
		pid, line, _ := strings.Cut(strings.TrimPrefix(cmd, "@!"), ";")
		n, _ := strconv.Atoi(pid)
		own := []byte("\nPid: " + pid + "\n")
		switch {
		case !slices.Contains(known, n):
			fmt.Fprintf(c, "Can't find the target PID matching the prefix '@!%s'\n", pid)
		case slices.Contains(serving, n):
			testbed.AnswerCommands(string(bytes.Replace(answer, []byte("\nPid: 8058\n"), own, 1)))(c, line)
		default:
			testbed.AnswerCommands(string(bytes.Replace(stopping, []byte("\nPid: 8058\n"), own, 1)))(c, line)
		}
	})
}

// TestMasterCommands checks what is written to a master CLI: "show proc"
// and show commands routed to a worker by "@", nothing else.
func TestMasterCommands(t *testing.T) {
	fake := fakeMaster(t, procTwoOld, []int{8600}, 8600, 8529, 8393)
	h := newPlugin(t, &HAProxy{Servers: []string{"master:" + fake.Path}, Types: []string{"server"}})
	ms, errs := gather(t, h)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	cmds := fake.Commands()
	sort.Strings(cmds)
	want := []string{
		"@!8393;show info\n",
		"@!8393;show info;show stat -1 4 -1" + lineOptional() + "\n",
		"@!8393;" + certLine(),
		"@!8529;show info\n",
		"@!8529;show info;show stat -1 4 -1" + lineOptional() + "\n",
		"@!8529;" + certLine(),
		"@!8600;show info;show stat -1 4 -1" + lineOptional() + "\n",
		"@!8600;" + certLine(),
		"show proc;@1 show cli sockets\n",
	}
	if !slices.Equal(cmds, want) {
		t.Errorf("commands %q, want %q", cmds, want)
	}
	for _, w := range []string{"", "old1", "old2"} {
		m := find(withWorker(ms, w), "haproxy", map[string]string{"server": "/run/haproxy/admin.sock", "proxy": "app.v1", "sv": "web-1"})
		if m == nil {
			t.Errorf("no web-1 row of worker %q", w)
		}
	}
	if n, want := count(ms, "haproxy"), 3*count(withWorker(ms, ""), "haproxy"); n != want {
		t.Errorf("%d rows, want %d: the same rows from each of the 3 workers", n, want)
	}
}

// TestMasterWorkerGone: an old worker that ended between "show proc" and
// its query is not an error; a current one is, naming its pid.
func TestMasterWorkerGone(t *testing.T) {
	fake := fakeMaster(t, procTwoOld, []int{8600}, 8600, 8529) // 8393 is gone
	h := newPlugin(t, &HAProxy{Servers: []string{"master:" + fake.Path}})
	ms, errs := gather(t, h)
	if len(errs) > 0 {
		t.Errorf("an old worker gone: errors %v", errs)
	}
	if n := count(ms, "haproxy_info"); n != 2 {
		t.Errorf("%d haproxy_info metrics, want the 2 workers left", n)
	}

	fake = fakeMaster(t, procTwoOld, []int{8600}, 8529, 8393) // the current worker is gone
	h = newPlugin(t, &HAProxy{Servers: []string{"master:" + fake.Path}})
	_, errs = gather(t, h)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "master:"+fake.Path+", worker pid 8600") ||
		!strings.Contains(errs[0].Error(), "no longer knows") {
		t.Errorf("the current worker gone: errors %v, want one naming the master and pid 8600", errs)
	}
}

// TestMasterServingWorker: whatever show proc lists, the worker that
// serves is the one that says so ("Stopping: 0" in its show info), and
// the old workers are named by their rank among the workers that stop.
func TestMasterServingWorker(t *testing.T) {
	// After a good reload, a failed one: 3.2 and 2.2 list the serving
	// worker (8600) among the old ones, 2.6 and 3.0 as current.
	const proc32 = `#<PID>          <type>          <reloads>       <uptime>        <version>
8392            master          2 [failed: 1]   0d00h00m02s     3.2.26-1
# workers
# old workers
8600            worker          1               0d00h00m02s     3.2.26-1
8529            worker          2               0d00h00m02s     3.2.26-1

`
	const proc22 = `#<PID>          <type>          <relative PID>  <reloads>       <uptime>        <version>
8392            master          0               2               0d00h00m03s     2.2.9-2+deb11u6
# workers
# old workers
8600            worker          [was: 1]        1               0d00h00m02s     2.2.9-2+deb11u6
8529            worker          [was: 1]        2               0d00h00m03s     2.2.9-2+deb11u6
# programs

`
	const proc26 = `#<PID>          <type>          <reloads>       <uptime>        <version>
8392            master          2 [failed: 1]   0d00h00m02s     2.6.12-1+deb12u4
# workers
8600            worker          1               0d00h00m02s     2.6.12-1+deb12u4
# old workers
8529            worker          2               0d00h00m02s     2.6.12-1+deb12u4
# programs

`
	// Then a good reload (8700): the worker it replaced is old1, the one
	// before it old2.
	const procNext = `#<PID>          <type>          <reloads>       <uptime>        <version>
8392            master          3 [failed: 0]   0d00h00m03s     3.2.26-1
# workers
8700            worker          0               0d00h00m00s     3.2.26-1
# old workers
8600            worker          2               0d00h00m03s     3.2.26-1
8529            worker          3               0d00h00m03s     3.2.26-1

`
	tests := []struct {
		name            string
		procs           string
		serving         []int
		current         int
		old             map[string]int // worker tag -> pid
		workers, oldWks int64
	}{
		{"3.2 after a failed reload", proc32, []int{8600}, 8600, map[string]int{"old1": 8529}, 1, 1},
		{"2.2 after a failed reload", proc22, []int{8600}, 8600, map[string]int{"old1": 8529}, 1, 1},
		{"2.6 after a failed reload", proc26, []int{8600}, 8600, map[string]int{"old1": 8529}, 1, 1},
		{"the next good reload", procNext, []int{8700}, 8700, map[string]int{"old1": 8600, "old2": 8529}, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := fakeMaster(t, tt.procs, tt.serving, 8700, 8600, 8529)
			h := newPlugin(t, &HAProxy{Servers: []string{"master:" + fake.Path}})
			ms, errs := gather(t, h)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			m := find(ms, "haproxy_master", nil)
			if m == nil {
				t.Fatal("no haproxy_master")
			}
			if w, _ := m.GetField("workers"); w != tt.workers {
				t.Errorf("workers = %v, want %d", w, tt.workers)
			}
			if w, _ := m.GetField("old_workers"); w != tt.oldWks {
				t.Errorf("old_workers = %v, want %d", w, tt.oldWks)
			}
			want := map[string]int{"": tt.current}
			for tag, pid := range tt.old {
				want[tag] = pid
			}
			checkWorkers(t, tt.name, ms, want)
		})
	}
	// The names follow the ranks: check them against the pids directly.
	p, err := parseShowProc(newLineReader(strings.NewReader(procNext)))
	if err != nil {
		t.Fatal(err)
	}
	if got := oldWorkerTags(p.old); got[8600] != "old1" || got[8529] != "old2" {
		t.Errorf("oldWorkerTags = %v, want 8600 old1 and 8529 old2", got)
	}
	// nbproc: the workers of one generation share their name.
	two := []procEntry{{pid: 1, reloads: 1}, {pid: 2, reloads: 1}, {pid: 3, reloads: 4}}
	if got := oldWorkerTags(two); got[1] != "old1" || got[2] != "old1" || got[3] != "old2" {
		t.Errorf("oldWorkerTags of two generations = %v", got)
	}
}

// TestMasterRefusedThenAnswers: a master that refuses connections for a
// moment (as it does while it reloads) is tried again within the timeout.
func TestMasterRefusedThenAnswers(t *testing.T) {
	stale := testbed.StaleSocket(t) // refuses connections
	answer := readTestdata(t, "haproxy-2.6.12.txt")
	ready := make(chan struct{})
	go func() {
		defer close(ready)
		time.Sleep(150 * time.Millisecond)
		// The master comes back at the same path with no moment without
		// it (a path that is gone is a master that is not running): bound
		// beside it, then renamed over it.
		l, err := net.Listen("unix", stale+".new")
		if err == nil {
			err = os.Rename(stale+".new", stale)
		}
		if err != nil {
			t.Error(err)
			return
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					buf := make([]byte, 4096)
					n, _ := c.Read(buf)
					if strings.HasPrefix(string(buf[:n]), "show proc") {
						fmt.Fprint(c, procFresh)
						return
					}
					_, line, _ := strings.Cut(string(buf[:n]), ";") // after @!<pid>
					testbed.AnswerCommands(string(answer))(c, line)
				}()
			}
		}()
	}()
	h := newPlugin(t, &HAProxy{Servers: []string{"master:" + stale}, Timeout: 5 * 1e9})
	ms, errs := gather(t, h)
	<-ready
	if len(errs) > 0 {
		t.Fatalf("errors %v", errs)
	}
	if find(ms, "haproxy_master", nil) == nil || count(ms, "haproxy_info") != 1 {
		t.Errorf("metrics %v", ms)
	}

	// A master that never comes back is an error naming it, once the
	// timeout is spent.
	h = newPlugin(t, &HAProxy{Servers: []string{"master:" + testbed.StaleSocket(t)}, Timeout: 3e8})
	_, errs = gather(t, h)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "show proc on master:") || !strings.Contains(errs[0].Error(), "connection refused") ||
		!strings.Contains(errs[0].Error(), "tries in") {
		t.Errorf("errors %v, want one naming the master, the refusal and the tries", errs)
	}
}

// graphitePaths serialises ms with the output's default templates, as
// Telegraf's graphite serializer does, and returns the set of paths.
func graphitePaths(t *testing.T, ms []telegraf.Metric) map[string]bool {
	t.Helper()
	s := &graphite.Serializer{Prefix: "p", Templates: contract.DefaultTemplates}
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	for _, m := range ms {
		m = m.Copy()
		m.AddTag("host", "lb1")
		out, err := s.Serialize(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(line); len(f) == 3 {
				paths[f[0]] = true
			}
		}
	}
	return paths
}

// seriesOf returns each metric's measurement and tags: its series in a
// time series database.
func seriesOf(ms []telegraf.Metric, skip func(telegraf.Metric) bool) []string {
	var out []string
	for _, m := range ms {
		if skip == nil || !skip(m) {
			out = append(out, seriesID(m))
		}
	}
	sort.Strings(out)
	return out
}

func seriesID(m telegraf.Metric) string { return m.Name() + " " + fmt.Sprint(m.Tags()) }

// samePaths asserts that a and b, two gathers of one HAProxy process,
// give the same Graphite paths. A field may come and go between two
// gathers (check_code, last_chk follow the health checks): only the
// fields both gathers have of a series are compared.
func samePaths(t *testing.T, what string, a, b []telegraf.Metric) {
	t.Helper()
	fields := map[string]map[string]int{}
	for _, ms := range [][]telegraf.Metric{a, b} {
		for _, m := range ms {
			id := seriesID(m)
			if fields[id] == nil {
				fields[id] = map[string]int{}
			}
			for _, f := range m.FieldList() {
				fields[id][f.Key]++
			}
		}
	}
	common := func(ms []telegraf.Metric) []telegraf.Metric {
		var out []telegraf.Metric
		for _, m := range ms {
			m = m.Copy()
			var drop []string
			for _, f := range m.FieldList() {
				if fields[seriesID(m)][f.Key] != 2 {
					drop = append(drop, f.Key)
				}
			}
			for _, k := range drop {
				m.RemoveField(k)
			}
			out = append(out, m)
		}
		return out
	}
	pa, pb := graphitePaths(t, common(a)), graphitePaths(t, common(b))
	if len(pa) < 100 || fmt.Sprint(pa) != fmt.Sprint(pb) {
		var only []string
		for p := range pa {
			if !pb[p] {
				only = append(only, p)
			}
		}
		for p := range pb {
			if !pa[p] {
				only = append(only, p)
			}
		}
		sort.Strings(only)
		t.Errorf("%s: %d and %d paths; in one of them only: %v", what, len(pa), len(pb), only)
	}
}

func withWorker(ms []telegraf.Metric, worker string) []telegraf.Metric {
	var out []telegraf.Metric
	for _, m := range ms {
		if w, _ := m.GetTag("worker"); w == worker && m.Name() != "haproxy_master" {
			out = append(out, m)
		}
	}
	return out
}

// TestIntegrationMasterWorker runs a real master-worker HAProxy through
// the sequence an operator goes through: a session held on the first
// worker, a good reload, a session held on the second worker, a failed
// reload, another good reload. At each step the serving worker is
// untagged (whatever show proc lists: 2.2, 3.2 and 3.4 list it as old after a
// failed reload), the others are old1, old2 ... from the youngest, and
// haproxy_master counts them so.
func TestIntegrationMasterWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("needs HAProxy (apt-get install haproxy, or ./scripts/test)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hp := newStickyMaster(ctx, t)
	var logs testbed.SyncBuffer
	master := newPlugin(t, &HAProxy{Servers: []string{"master:" + hp.MasterSocket},
		Log: logger.New(logger.NewSink(&logs, telegraf.Debug), "inputs.haproxy")})
	direct := newPlugin(t, &HAProxy{Servers: []string{hp.AdminSocket}})
	// 2.2's old workers answer show stat with its header only; the
	// releases after it give their every row.
	oldRows := !strings.HasPrefix(hp.Version, "2.2.")
	// 2.2's show proc has no failed-reload count.
	failedCount := func(n int64) map[string]int64 {
		if !oldRows {
			return nil
		}
		return map[string]int64{"failed_reloads": n}
	}
	counts := func(m map[string]int64, more map[string]int64) map[string]int64 {
		for k, v := range more {
			m[k] = v
		}
		return m
	}

	// One worker: the master gives exactly the series, and the Graphite
	// paths, of the worker's own stats socket.
	viaMaster, errs := gather(t, master)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	viaSocket, errs := gather(t, direct)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	notMaster := func(m telegraf.Metric) bool { return m.Name() == "haproxy_master" }
	if got, want := seriesOf(viaMaster, notMaster), seriesOf(viaSocket, nil); !slices.Equal(got, want) {
		t.Errorf("series through the master:\n%v\nthrough the admin socket:\n%v", got, want)
	}
	samePaths(t, "Graphite paths through the master and the admin socket", withWorker(viaMaster, ""), viaSocket)
	checkMaster(t, viaMaster, hp, counts(map[string]int64{"reloads": 0, "workers": 1, "old_workers": 0}, failedCount(0)))

	// A session on the first worker, then a good reload: it stays, old1.
	first, err := hp.HoldConnection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Close() }()
	before, err := hp.Processes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	firstPID := before.Current[0]
	secondPID, err := hp.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The new worker starts from the configuration: an entry in its table.
	if out, err := hp.Command(ctx, "set table sticky key 10.0.0.2 data.gpc0 1"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("set table: %q %v", out, err)
	}
	ms, errs := gather(t, master)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	checkMaster(t, ms, hp, counts(map[string]int64{"reloads": 1, "workers": 1, "old_workers": 1}, failedCount(0)))
	current, old := withWorker(ms, ""), withWorker(ms, "old1")
	checkScenario(t, current, hp.AdminSocket)
	checkWorkers(t, "after a good reload", ms, map[string]int{"": secondPID, "old1": firstPID})
	rows := func(ms []telegraf.Metric) []string {
		var out []string
		for _, m := range ms {
			p, _ := m.GetTag("proxy")
			sv, _ := m.GetTag("sv")
			tbl, _ := m.GetTag("table")
			out = append(out, m.Name()+"/"+p+"/"+sv+"/"+tbl)
		}
		sort.Strings(out)
		return out
	}
	if oldRows {
		// The old worker has every row, table and info of the current one;
		// it no longer listens: its frontends are stopped.
		if got, want := rows(old), rows(current); !slices.Equal(got, want) {
			t.Errorf("old1 worker's metrics:\n%v\ncurrent worker's:\n%v", got, want)
		}
		for _, px := range []string{testbed.ScenarioFrontend, testbed.ScenarioTCP} {
			if m := row(old, px, "FRONTEND"); m != nil {
				checkStatus(t, m, FrontendStates, StateStop)
			}
		}
		// The session is on the old worker: its TCP frontend holds it,
		// the current one's none.
		scur := func(ms []telegraf.Metric) any {
			v, _ := row(ms, testbed.ScenarioTCP, "FRONTEND").GetField("scur")
			return v
		}
		if scur(old) != uint64(1) || scur(current) != uint64(0) {
			t.Errorf("db_tcp-1 FRONTEND scur: old1 %v, current %v; want 1 and 0", scur(old), scur(current))
		}
	} else {
		// Only its info and tables, said once.
		if got := rows(old); len(got) != 2 || count(old, "haproxy_info") != 1 || count(old, "haproxy_table") != 1 {
			t.Errorf("old1 worker of %s: %v, want its haproxy_info and haproxy_table", hp.Version, got)
		}
		if _, errs := gather(t, master); len(errs) > 0 {
			t.Fatal(errs)
		}
		if n := strings.Count(logs.String(), "I! [inputs.haproxy] master:"+hp.MasterSocket+": HAProxy "+hp.Version+"'s old workers answer show stat with no rows"); n != 1 {
			t.Errorf("two gathers said %d times that old workers give no rows, want once:\n%s", n, logs.String())
		}
	}
	// The current worker starts with an empty table (no peers section
	// hands entries over) and has the entry set since. A stopping worker
	// empties its table at once up to 3.2; 3.4 keeps its entries until
	// they expire or it exits (docs/haproxy-releases.md).
	used := func(ms []telegraf.Metric) any {
		v, _ := find(ms, "haproxy_table", map[string]string{"table": "sticky"}).GetField("used")
		return v
	}
	oldUsed := int64(0)
	if releaseAtLeast(t, hp.Version, 3, 4) {
		oldUsed = 1
	}
	if used(old) != oldUsed || used(current) != int64(1) {
		t.Errorf("table sticky used: old1 %v, current %v; want %d and 1 on %s", used(old), used(current), oldUsed, hp.Version)
	}
	// Distinct Graphite paths; the current worker's are still those of
	// its stats socket.
	oldPaths, curPaths := graphitePaths(t, old), graphitePaths(t, current)
	for p := range oldPaths {
		if curPaths[p] {
			t.Errorf("path %s is both the current and the old worker's", p)
		}
	}
	wantOld := []string{"p.lb1.1.old1.Pid", "p.lb1.1.old1.haproxy_table.sticky.used"}
	if oldRows {
		wantOld = append(wantOld, "p.lb1.1.old1.db_tcp-1.FRONTEND.scur")
	}
	for _, p := range wantOld {
		if !oldPaths[p] {
			t.Errorf("old worker: no path %s", p)
		}
	}
	for _, p := range []string{"p.lb1.1.db_tcp-1.FRONTEND.scur", "p.lb1.1.Pid", "p.lb1.1.haproxy_table.sticky.used"} {
		if !curPaths[p] {
			t.Errorf("current worker: no path %s", p)
		}
	}
	if paths := graphitePaths(t, ms); !paths["p.lb1.haproxy_master.reloads"] || !paths["p.lb1.haproxy_master.old_workers"] {
		t.Errorf("no haproxy_master paths")
	}
	viaSocket, errs = gather(t, direct)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	samePaths(t, "after the reload, Graphite paths of the current worker and the admin socket", current, viaSocket)

	// A session on the second worker, then a failed reload: the master
	// counts it, and nobody is renamed: the second worker serves, the
	// first is old1.
	second, err := hp.HoldConnection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = second.Close() }()
	if _, err := hp.FailReload(ctx); err != nil {
		t.Fatal(err)
	}
	ms, errs = gather(t, master)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	checkMaster(t, ms, hp, counts(map[string]int64{"reloads": 2, "workers": 1, "old_workers": 1}, failedCount(1)))
	checkWorkers(t, "after a failed reload", ms, map[string]int{"": secondPID, "old1": firstPID})
	if len(withWorker(ms, "old1")) != len(old) || len(withWorker(ms, "")) != len(current) {
		t.Errorf("after a failed reload: %d metrics of old1, %d of the current worker; want %d and %d",
			len(withWorker(ms, "old1")), len(withWorker(ms, "")), len(old), len(current))
	}
	samePaths(t, "after a failed reload, Graphite paths of the serving worker before and after", current, withWorker(ms, ""))

	// Another good reload: the second worker is old1, the first old2.
	thirdPID, err := hp.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ms, errs = gather(t, master)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	checkMaster(t, ms, hp, counts(map[string]int64{"reloads": 3, "workers": 1, "old_workers": 2}, failedCount(0)))
	checkWorkers(t, "after the next good reload", ms, map[string]int{"": thirdPID, "old1": secondPID, "old2": firstPID})

	// A gather right after a reload: the master refuses connections for a
	// moment while it re-executes itself; that is no error.
	hp.SendReload(ctx)
	_, errs = gather(t, master)
	if len(errs) > 0 {
		t.Errorf("gather right after a reload: %v", errs)
	}

	// The sessions end: the old workers leave, and with them their series.
	for _, held := range []*testbed.HeldConnection{first, second} {
		if err := held.Err(); err != nil {
			t.Errorf("a held session ended early: %v", err)
		}
		_ = held.Close()
	}
	for {
		p, err := hp.Processes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Old) == 0 && len(p.Current) == 1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	ms, errs = gather(t, master)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	checkMaster(t, ms, hp, counts(map[string]int64{"reloads": 4, "workers": 1, "old_workers": 0}, failedCount(0)))
	if n := count(ms, "haproxy_info"); n != 1 {
		t.Errorf("%d haproxy_info metrics once the old workers left, want 1", n)
	}
}

// newStickyMaster starts a master-worker HAProxy of the standard scenario
// with a stick table "sticky" holding one entry, 10.0.0.1.
func newStickyMaster(ctx context.Context, t *testing.T) *testbed.HAProxy {
	t.Helper()
	hp := testbed.NewHAProxy(t, testbed.HAProxyOptions{MasterWorker: true, Extra: `backend sticky
	stick-table type ip size 1m expire 10m store gpc0
`})
	if out, err := hp.Command(ctx, "set table sticky key 10.0.0.1 data.gpc0 1"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("set table: %q %v", out, err)
	}
	return hp
}

// releaseAtLeast reports whether version ("3.4.7-1") is major.minor or
// later.
func releaseAtLeast(t *testing.T, version string, major, minor int) bool {
	t.Helper()
	var ma, mi int
	if _, err := fmt.Sscanf(version, "%d.%d", &ma, &mi); err != nil {
		t.Fatalf("HAProxy version %q: %v", version, err)
	}
	return ma > major || ma == major && mi >= minor
}

// checkWorkers asserts which process each worker tag's haproxy_info
// comes from ("" the untagged, serving worker) and that there are no
// other tags.
func checkWorkers(t *testing.T, when string, ms []telegraf.Metric, want map[string]int) {
	t.Helper()
	got := map[string]int{}
	for _, m := range ms {
		if m.Name() != "haproxy_info" {
			continue
		}
		w, _ := m.GetTag("worker")
		pid, _ := m.GetField("Pid")
		if _, dup := got[w]; dup {
			t.Errorf("%s: two haproxy_info metrics of worker %q", when, w)
		}
		got[w] = int(pid.(int64))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: workers (tag: pid) %v, want %v", when, got, want)
	}
}

// checkMaster asserts the haproxy_master metric's tags and counts, and
// that its version is the HAProxy's.
func checkMaster(t *testing.T, ms []telegraf.Metric, hp *testbed.HAProxy, want map[string]int64) {
	t.Helper()
	if n := count(ms, "haproxy_master"); n != 1 {
		t.Fatalf("%d haproxy_master metrics", n)
	}
	m := find(ms, "haproxy_master", nil)
	if got := fmt.Sprint(m.Tags()); got != fmt.Sprint(map[string]string{"server": hp.MasterSocket}) {
		t.Errorf("haproxy_master tags %s", got)
	}
	for k, v := range want {
		if got, _ := m.GetField(k); got != v {
			t.Errorf("haproxy_master %s = %#v, want %d", k, got, v)
		}
	}
	if up, ok := m.GetField("uptime_sec"); !ok || up.(int64) < 0 {
		t.Errorf("haproxy_master uptime_sec = %v", up)
	}
	if v, _ := m.GetField("version"); v != hp.Version {
		t.Errorf("haproxy_master version = %v, want %s", v, hp.Version)
	}
}
