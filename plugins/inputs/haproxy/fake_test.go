package haproxy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
)

// gather runs one Gather and returns its metrics and errors.
func gather(t testing.TB, h *HAProxy) ([]telegraf.Metric, []error) {
	t.Helper()
	acc := &shim.Accumulator{}
	if err := h.Gather(acc); err != nil {
		t.Fatalf("Gather: %v", err)
	}
	return acc.Drain()
}

// TestOnlyShowCommands records what the plugin writes under every option
// and checks that it is one line of "show" commands.
func TestOnlyShowCommands(t *testing.T) {
	answer := readTestdata(t, "haproxy-2.6.12.txt")
	fake := testbed.NewFakeSocket(t, testbed.AnswerCommands(string(answer)))
	configs := []*HAProxy{
		{},
		{KeepFieldNames: true},
		{Types: []string{"server"}},
		{Types: []string{"frontend", "backend", "server", "listener"}},
		{Proxies: []string{"app.v1"}},
		{Proxies: []string{"app.v1", "db_tcp-1"}, Types: []string{"backend"}},
		{IncludeFields: []string{"status*"}, ExcludeFields: []string{"status.OTHER"}},
		{Username: "admin", Password: "secret", Timeout: config.Duration(time.Second)},
	}
	for i, h := range configs {
		h.Servers = []string{"unix://" + fake.Path}
		newPlugin(t, h)
		ms, errs := gather(t, h)
		if len(ms) == 0 {
			t.Errorf("config %d: no metrics (errors %v)", i, errs)
		}
	}
	// Each gather: the line, and the certificate commands on a
	// connection of their own.
	cmds := fake.Commands()
	if len(cmds) != 2*len(configs) {
		t.Fatalf("%d connections for %d gathers, want 2 each", len(cmds), len(configs))
	}
	for _, line := range cmds {
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Errorf("command %q is not one line", line)
		}
		for _, c := range strings.Split(strings.TrimSuffix(line, "\n"), ";") {
			if c != "show info" && !strings.HasPrefix(c, "show stat") && !slices.ContainsFunc(optionalCommands, func(o *command) bool { return o.text == c }) {
				t.Errorf("command %q written to the socket", c)
			}
		}
	}
	if want := "show info;show stat app.v1 2 -1;show stat db_tcp-1 2 -1" + lineOptional() + "\n"; !slices.Contains(cmds, want) {
		t.Errorf("proxies and types not sent as %q: %q", want, cmds)
	}
	if want := certLine(); !slices.Contains(cmds, want) {
		t.Errorf("certificates not asked as %q: %q", want, cmds)
	}
}

// TestHungServerDoesNotDelayOthers: a socket that accepts and never
// answers fails on the timeout while a second server reports.
func TestHungServerDoesNotDelayOthers(t *testing.T) {
	answer := readTestdata(t, "haproxy-2.6.12.txt")
	release := make(chan struct{})
	hung := testbed.NewFakeSocket(t, func(net.Conn, string) { <-release })
	t.Cleanup(func() { close(release) })
	good := testbed.NewFakeSocket(t, testbed.AnswerCommands(string(answer)))
	h := newPlugin(t, &HAProxy{Servers: []string{hung.Path, "socket:" + good.Path}, Timeout: config.Duration(300 * time.Millisecond)})
	ms, errs := gather(t, h)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "show stat on "+hung.Path+": ") ||
		!strings.Contains(errs[0].Error(), "timeout") {
		t.Fatalf("errors = %v, want one timeout error naming %s", errs, hung.Path)
	}
	if n := count(ms, "haproxy"); n != 12 {
		t.Errorf("the answering server gave %d rows, want 12", n)
	}
	for _, m := range ms {
		if s, _ := m.GetTag("server"); s != good.Path {
			t.Errorf("metric from server %q", s)
		}
	}
}

func TestFaults(t *testing.T) {
	answer := string(readTestdata(t, "haproxy-2.6.12.txt"))
	midRow := answer[:strings.Index(answer, "app.v1,web-2,")+20] // info, header, 2 rows, part of the 3rd
	stat := strings.TrimSuffix(answer, "\n")                     // without show table's answer (an empty line: no table)
	tables := "# table: tbl_str, type: string, size:2048, used:1\n# table: tbl_ip, type: ip, size:1048576, used:2\n\n"
	tests := []struct {
		name   string
		send   string
		rows   int
		tables int
		wants  []string
	}{
		{"closes mid-row", midRow, 2, 0, []string{"truncated at row 3", "input ended mid-row"}},
		{"closes before the empty line", strings.TrimSuffix(stat, "\n"), 12, 0, []string{"truncated at row 12", "no closing empty line"}},
		{"closes before show table's answer", stat, 12, 0, []string{"show table: answer truncated: empty answer"}},
		{"closes inside show table's answer", stat + tables[:60], 12, 1, []string{"show table: answer truncated: input ended inside line 2"}},
		{"malformed table line", stat + "# table: tbl_x, type: ip, size:many, used:0\n" + tables, 12, 2,
			[]string{`show table: line 1 left out: size "many" is not a count: "# table: tbl_x, type: ip, size:many, used:0"`}},
		{"ragged row, then tables", strings.Replace(stat, "app.v1,web-2,", "app.v1,web-2,1,", 1) + tables, 11, 2,
			[]string{`row 3 (proxy "app.v1", server "web-2") left out`}},
		{"not CSV", "HTTP/1.0 400 Bad request\r\n\r\n", 0, 0, []string{"not show info"}},
		{"binary garbage", "\x00\x01\x02\xff\n\n# \xff\n\n", 0, 0, []string{"not show info"}},
		{"closes at once", "", 0, 0, []string{"show info", "truncated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := testbed.NewFakeSocket(t, func(conn net.Conn, _ string) { conn.Write([]byte(tt.send)) }) //nolint:errcheck // test fake
			h := newPlugin(t, &HAProxy{Servers: []string{fake.Path}, Timeout: config.Duration(5 * time.Second)})
			ms, errs := gather(t, h)
			if len(errs) != 1 {
				t.Fatalf("errors = %v, want one", errs)
			}
			msg := errs[0].Error()
			for _, w := range append(tt.wants, "show stat on "+fake.Path+": ") {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			if n := count(ms, "haproxy"); n != tt.rows {
				t.Errorf("%d rows emitted, want %d", n, tt.rows)
			}
			if n := count(ms, "haproxy_table"); n != tt.tables {
				t.Errorf("%d tables emitted, want %d", n, tt.tables)
			}
		})
	}
}

// TestRaggedRowDoesNotStopTheNextAnswer: with proxies named, each has its
// own show stat answer; a ragged row in the first is reported and the
// second answer and the tables are still read.
func TestRaggedRowDoesNotStopTheNextAnswer(t *testing.T) {
	info, rest, _ := strings.Cut(string(readTestdata(t, "haproxy-2.6.12.txt")), "\n\n")
	header, rows, _ := strings.Cut(rest, "\n")
	var app, db []string
	for _, r := range strings.Split(rows, "\n") {
		switch {
		case strings.HasPrefix(r, "app.v1,web-2,"):
			app = append(app, "app.v1,web-2,0,0,") // ragged
		case strings.HasPrefix(r, "app.v1,"):
			app = append(app, r)
		case strings.HasPrefix(r, "db_tcp-1,"):
			db = append(db, r)
		}
	}
	answer := info + "\n\n" + header + "\n" + strings.Join(app, "\n") + "\n\n" + header + "\n" + strings.Join(db, "\n") + "\n\n" +
		"# table: app.v1, type: ip, size:10, used:1\n\n"
	fake := testbed.NewFakeSocket(t, func(conn net.Conn, _ string) { conn.Write([]byte(answer)) }) //nolint:errcheck // test fake
	h := newPlugin(t, &HAProxy{Servers: []string{fake.Path}, Proxies: []string{"app.v1", "db_tcp-1"}})
	ms, errs := gather(t, h)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `proxy "app.v1": row 2 (proxy "app.v1", server "web-2") left out`) {
		t.Fatalf("errors = %v, want one naming app.v1/web-2", errs)
	}
	if n := count(ms, "haproxy"); n != len(app)-1+len(db) {
		t.Errorf("%d rows emitted, want %d", n, len(app)-1+len(db))
	}
	if row(ms, testbed.ScenarioTCP, "BACKEND") == nil {
		t.Error("the second answer was not read")
	}
	if count(ms, "haproxy_table") != 1 {
		t.Error("the tables were not read")
	}
}

func TestGarbageAnswerIsBounded(t *testing.T) {
	// 50 MB without a newline: the read stops at the line cap.
	chunk := []byte(strings.Repeat("z", 1<<20))
	fake := testbed.NewFakeSocket(t, func(conn net.Conn, _ string) {
		for i := 0; i < 50; i++ {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
	})
	h := newPlugin(t, &HAProxy{Servers: []string{fake.Path}})
	_, errs := gather(t, h)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), fmt.Sprintf("longer than %d bytes", MaxLineBytes)) {
		t.Fatalf("errors = %v, want the line cap", errs)
	}
}

func TestMissingSocketAndGlob(t *testing.T) {
	dir := testbed.ShortTempDir(t)
	missing := filepath.Join(dir, "gone.sock")
	glob := filepath.Join(dir, "*.nomatch")
	h := newPlugin(t, &HAProxy{Servers: []string{missing, glob}})
	_, errs := gather(t, h)
	if len(errs) != 2 {
		t.Fatalf("errors = %v, want 2", errs)
	}
	all := errs[0].Error() + "\n" + errs[1].Error()
	for _, w := range []string{"show stat on " + missing + ": ", "no such file or directory", `no socket matches "` + glob + `"`} {
		if !strings.Contains(all, w) {
			t.Errorf("errors %q do not say %q", all, w)
		}
	}
}

// TestDialErrorsSayWhatToDo: a socket or page that cannot be reached is
// reported with its name and what to check, for each cause a real
// configuration gives.
func TestDialErrorsSayWhatToDo(t *testing.T) {
	dir := testbed.ShortTempDir(t)
	missing := filepath.Join(dir, "gone.sock")
	stale := testbed.StaleSocket(t)
	closed := testbed.ClosedAddr(t)
	tests := []struct {
		name   string
		server string
		wants  []string
	}{
		{"missing unix socket", missing, []string{"show stat on " + missing + ": ", "no such file or directory",
			`is HAProxy running, and does a "stats socket" line of its global section name ` + missing + "?"}},
		{"socket file nobody listens on", "unix://" + stale, []string{"show stat on " + stale + ": ", "connection refused",
			"no HAProxy listens on it"}},
		{"refused tcp socket", "tcp://" + closed, []string{"show stat on tcp://" + closed + ": ", "connection refused",
			"nothing listens on " + closed, `check HAProxy's "stats socket ipv4@` + closed + `" line`}},
		{"refused stats page", "http://" + closed + "/stats", []string{"show stat on http://" + closed + "/stats/;csv: ", "connection refused",
			"nothing listens on " + closed, `"stats uri"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newPlugin(t, &HAProxy{Servers: []string{tt.server}})
			_, errs := gather(t, h)
			if len(errs) != 1 {
				t.Fatalf("errors = %v, want one", errs)
			}
			for _, w := range tt.wants {
				if !strings.Contains(errs[0].Error(), w) {
					t.Errorf("error %q does not say %q", errs[0], w)
				}
			}
		})
	}
}

// permChildEnv makes the test binary, re-run as an unprivileged user, gather
// the socket named by the variable and print the errors.
const permChildEnv = "HM_HAPROXY_PERM_SOCKET"

// TestPermissionDenied: a socket the user may not reach is reported with
// the mode, owner and group of what denies, the user hap-monitor runs as,
// and what to change. As root, permissions do not apply: the gather runs
// in this test binary started again as nobody (uid 65534, group nogroup).
func TestPermissionDenied(t *testing.T) {
	if path := os.Getenv(permChildEnv); path != "" {
		h := newPlugin(t, &HAProxy{Servers: []string{path}})
		_, errs := gather(t, h)
		for _, err := range errs {
			fmt.Println("ERROR:", err)
		}
		return
	}
	asRoot := os.Geteuid() == 0
	// Who gathers, as the message names them.
	uid, gid := os.Geteuid(), os.Getegid()
	if asRoot {
		uid, gid = 65534, 65534
	}
	who := fmt.Sprintf("hap-monitor runs as user %s (uid %d)", userName(uid), uid)
	answer := readTestdata(t, "haproxy-2.6.12.txt")
	tests := []struct {
		name     string
		needRoot string // why the case needs root, if it does
		setup    func(t *testing.T, sock, dir string)
		wants    func(sock, dir string) []string
	}{
		{"directory not searchable", "", func(t *testing.T, _, dir string) {
			chmod(t, dir, 0)
		}, func(_, dir string) []string {
			// The test's user owns the directory: as root, nobody is
			// neither its owner nor in its group.
			fix := "chmod g+x " + dir
			if !asRoot {
				fix = "its owner, but the mode does not let the owner search the directory: chmod u+x " + dir
			}
			return []string{"directory " + dir + " is mode 000, owner " + userName(os.Geteuid()), who, fix}
		}},
		{"socket of another user", "the socket must belong to another user than the gathering one", func(t *testing.T, sock, dir string) {
			chmod(t, dir, 0o755)
			chmod(t, sock, 0o600)
		}, func(sock, _ string) []string {
			return []string{"socket " + sock + " is mode 600, owner root, group root; " + who,
				"run hap-monitor as a member of group root, or change \"mode\"/\"group\" on HAProxy's \"stats socket " + sock + "\" line"}
		}},
		{"group without write", "chown to another group needs root", func(t *testing.T, sock, dir string) {
			chmod(t, dir, 0o755)
			if err := os.Chown(sock, 0, gid); err != nil {
				t.Fatal(err)
			}
			chmod(t, sock, 0o640)
		}, func(sock, _ string) []string {
			return []string{"socket " + sock + " is mode 640, owner root, group " + groupName(gid), who,
				"a member of group " + groupName(gid) + ", but the mode gives that group no write permission: set \"mode 660\" on HAProxy's \"stats socket " + sock + "\" line"}
		}},
		{"owner without write", "", func(t *testing.T, sock, dir string) {
			if asRoot {
				if err := os.Chown(sock, uid, gid); err != nil {
					t.Fatal(err)
				}
				chmod(t, dir, 0o755)
			}
			chmod(t, sock, 0o077)
		}, func(sock, _ string) []string {
			return []string{"socket " + sock + " is mode 077, owner " + userName(uid), who + ", its owner, but the mode gives the owner no write permission"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needRoot != "" && !asRoot {
				t.Skip("not root: " + tt.needRoot)
			}
			fake := testbed.NewFakeSocket(t, testbed.AnswerCommands(string(answer)))
			dir := filepath.Dir(fake.Path)
			t.Cleanup(func() { os.Chmod(dir, 0o700) }) //nolint:errcheck // best effort, so the dir can be removed
			tt.setup(t, fake.Path, dir)
			var out string
			if asRoot {
				out = runAsNobody(t, fake.Path)
			} else {
				h := newPlugin(t, &HAProxy{Servers: []string{fake.Path}})
				_, errs := gather(t, h)
				for _, err := range errs {
					out += "ERROR: " + err.Error() + "\n"
				}
			}
			t.Logf("%s", out)
			if strings.Count(out, "ERROR: ") != 1 {
				t.Fatalf("want one error, got:\n%s", out)
			}
			for _, w := range append(tt.wants(fake.Path, dir), "ERROR: show stat on "+fake.Path+": ", "permission denied") {
				if !strings.Contains(out, w) {
					t.Errorf("the error does not say %q:\n%s", w, out)
				}
			}
		})
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func runAsNobody(t *testing.T, socket string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary's own directory is private to root: copy it out.
	binDir, err := os.MkdirTemp("", "hmbin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "haproxy.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil { //nolint:gosec // an executable for another user
		t.Fatal(err)
	}
	if err := os.Chmod(binDir, 0o755); err != nil { //nolint:gosec // readable by nobody on purpose
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestPermissionDenied$", "-test.count=1")
	cmd.Env = append(os.Environ(), permChildEnv+"="+socket, "HOME=/")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running as nobody: %v", err)
	}
	return string(out)
}
