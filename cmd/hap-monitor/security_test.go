package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// Security: what hap-monitor writes to a stats socket, whatever the mode,
// and what a tampered answer can make it send.

// recordedAnswer is a real HAProxy 2.6 answer to "show info;show stat".
func recordedAnswer(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "plugins", "inputs", "haproxy", "testdata", "haproxy-2.6.12.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEveryModeWritesOnlyShowCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	sock := testbed.NewFakeSocket(t, testbed.AnswerCommands(recordedAnswer(t)))
	sink := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{})
	udp := testbed.NewUDPSink(t)
	dir := t.TempDir()
	input := func(extra string) string {
		return fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n%s\n", sock.Path, extra)
	}
	output := fmt.Sprintf("[[outputs.graphite_statsd]]\n  servers = [%q]\n  prefix = \"sec\"\n", sink.Addr)
	cases := []struct {
		name  string
		stdin string
		args  func() []string
	}{
		{"-test", "", func() []string {
			return []string{"-config", writeFile(t, dir, "test.conf", input("")), "-test"}
		}},
		{"-test with row types, proxies and field filters", "", func() []string {
			return []string{"-config", writeFile(t, dir, "filters.conf", input(`  types = ["backend", "server"]
  proxies = ["app.v1", "db_tcp-1"]
  include_fields = ["status*", "scur"]
  keep_field_names = true`)), "-test"}
		}},
		{"execd input, two stdin lines", "\n\n", func() []string {
			return []string{"-config", writeFile(t, dir, "execd.conf", input("")), "-poll_interval_disabled"}
		}},
		{"-once pipeline", "", func() []string {
			return []string{"-config", writeFile(t, dir, "once.conf", input("")+output), "-once"}
		}},
		{"original's command line, Graphite over TCP", "", func() []string {
			return []string{"--backend", sink.Addr + "::sec", "--type", "G", "--protocol", "tcp", "--sockets", sock.Path, sock.Path}
		}},
		{"original's command line, statsd", "", func() []string {
			return []string{"--backend", udp.Addr + "::sec", "--sockets", sock.Path, "--verbose"}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(sock.Commands())
			stdout, stderr, code := runBinary(t, bin, c.stdin, c.args()...)
			if code != 0 {
				t.Fatalf("exit %d\nstdout: %.300s\nstderr:\n%s", code, stdout, stderr)
			}
			cmds := sock.Commands()[before:]
			if len(cmds) == 0 {
				t.Fatal("nothing was asked of the socket")
			}
			for _, line := range cmds {
				if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
					t.Errorf("command %q is not one line", line)
				}
				for _, cmd := range strings.Split(strings.TrimSuffix(line, "\n"), ";") {
					if !readOnly(cmd) {
						t.Errorf("%q written to the stats socket", cmd)
					}
				}
			}
		})
	}
}

// readOnly tells whether cmd is one of the show commands the input asks:
// the statistics, stick tables, certificates, their OCSP updates and
// ACME renewals (acme status only reads), resolvers, peers.
func readOnly(cmd string) bool {
	switch cmd {
	case "show info", "show table", "show ssl cert", "show ssl sni", "show ssl ocsp-updates", "show resolvers", "show peers", "acme status":
		return true
	}
	file, isCert := strings.CutPrefix(cmd, "show ssl cert ")
	return strings.HasPrefix(cmd, "show stat") || isCert && file != "" && !strings.ContainsAny(file, " ;")
}

// refusedOptional are the lines a socket at level user gives: the
// optional commands it refuses, each said once.
var refusedOptional = regexp.MustCompile(`^I! \[inputs\.haproxy\] \S+: (show ssl cert|show ssl ocsp-updates|acme status) needs a stats socket at level (operator|admin) or above: this one refused it, so no haproxy_(cert|ocsp|acme) metrics \(not asked again\)$`)

// onlyRefusals fails t unless stderr holds nothing but refusedOptional
// lines.
func onlyRefusals(t *testing.T, what, stderr string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if l != "" && !refusedOptional.MatchString(l) {
			t.Errorf("%s: stderr line %q, want only the optional commands refused", what, l)
		}
	}
}

func TestUserLevelSocketAcrossModes(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	sink := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{})
	dir := t.TempDir()
	conf := writeFile(t, dir, "user.conf", fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n", h.UserSocket))

	stdout, stderr, code := runBinary(t, bin, "", "-config", conf, "-test")
	if code != 0 {
		t.Fatalf("-test on a level user socket: exit %d, stderr:\n%s", code, stderr)
	}
	onlyRefusals(t, "-test on a level user socket", stderr)
	if !strings.Contains(stderr, "show ssl cert needs a stats socket at level operator") {
		t.Errorf("-test on a level user socket does not say certificates need level operator:\n%s", stderr)
	}
	for proxy, servers := range testbed.ScenarioStatus {
		for server, status := range servers {
			state := strings.ToUpper(strings.ReplaceAll(status, " ", ""))
			tags := fmt.Sprintf(",proxy=%s,", proxy)
			sv := fmt.Sprintf(",sv=%s,", server)
			found := false
			for _, line := range strings.Split(stdout, "\n") {
				if strings.Contains(line, tags) && strings.Contains(line, sv) && strings.Contains(line, "status."+state+"=1i") {
					found = true
				}
			}
			if !found {
				t.Errorf("no line for %s/%s with status.%s=1i", proxy, server, state)
			}
		}
	}

	_, stderr, code = runBinary(t, bin, "", "--backend", sink.Addr+"::user", "--type", "G", "--protocol", "tcp", "--sockets", h.UserSocket)
	if code != 0 || stderr != "" {
		t.Fatalf("original's command line on a level user socket: exit %d, stderr:\n%s", code, stderr)
	}
	drain(t, sink)
	want := "user." + shortHost(t) + ".1.app_v1.web-1.status.UP 1 "
	for _, line := range sink.Lines() {
		if strings.HasPrefix(line, want) {
			return
		}
	}
	t.Errorf("no %q line among %d", want, len(sink.Lines()))
}

// tamperedAnswer is the recorded answer with a proxy and a server renamed
// to carry Graphite's, statsd's and line protocol's separators, a quoted
// line break included.
func tamperedAnswer(t *testing.T) string {
	t.Helper()
	info, stat, ok := strings.Cut(recordedAnswer(t), "\n\n")
	if !ok {
		t.Fatal("recorded answer has no end of show info")
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(stat, "\n") {
		if rest, ok := strings.CutPrefix(line, "app.v1,web-1,"); ok {
			line = `"evil proxy;tag=x|y:z@w` + "\n" + `injected.proxy 666 1",` +
				`"web 1` + "\n" + `injected.server 666 1;a=b",` + rest
		} else if rest, ok := strings.CutPrefix(line, "app.v1,"); ok {
			line = `"evil proxy;tag=x|y:z@w` + "\n" + `injected.proxy 666 1",` + rest
		}
		b.WriteString(line)
	}
	return info + "\n\n" + b.String()
}

func TestTamperedNamesCannotInjectLines(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	sock := testbed.NewFakeSocket(t, testbed.AnswerCommands(tamperedAnswer(t)))
	dir := t.TempDir()
	input := fmt.Sprintf("[[inputs.haproxy]]\n  servers = [%q]\n", sock.Path)
	host := shortHost(t)

	t.Run("line protocol", func(t *testing.T) {
		stdout, stderr, code := runBinary(t, bin, "", "-config", writeFile(t, dir, "lp.conf", input), "-test")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		lines := 0
		dec := lineprotocol.NewDecoderWithBytes([]byte(stdout))
		for dec.Next() {
			m, err := dec.Measurement()
			if err != nil {
				t.Fatalf("line %d: %v", lines+1, err)
			}
			if name := string(m); name != "haproxy" && name != "haproxy_info" {
				t.Errorf("measurement %q: a name escaped its tag", name)
			}
			for {
				k, v, err := dec.NextTag()
				if err != nil {
					t.Fatalf("line %d: %v", lines+1, err)
				}
				if k == nil {
					break
				}
				if strings.ContainsAny(string(v), "\n") {
					t.Errorf("tag %s=%q holds a line break", k, v)
				}
			}
			for {
				k, _, err := dec.NextField()
				if err != nil {
					t.Fatalf("line %d: %v", lines+1, err)
				}
				if k == nil {
					break
				}
			}
			lines++
		}
		// Line protocol cannot hold a line break in a tag value: each
		// tampered row is left out with a warning naming the value, and
		// every other row is printed.
		if strings.Contains(stdout, "injected") || strings.Contains(stdout, "evil") {
			t.Error("a tampered name reached stdout")
		}
		if want := 1 + 2 + 2 + 2; lines < want { // info, 2 frontends, 2 stats listeners, db_tcp-1's rows
			t.Errorf("%d lines, want the %d rows without tampered names", lines, want)
		}
		for _, want := range []string{"proxy=db_tcp-1,", "proxy=www.example-fe,"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("no %s line: a tampered row took others with it", want)
			}
		}
		if !regexp.MustCompile(`(?m)^W! .*invalid tag value proxy="evil proxy`).MatchString(stderr) {
			t.Errorf("no warning naming the tampered value:\n%s", stderr)
		}
	})

	for _, tc := range []struct{ name, extra string }{
		{"graphite", ""},
		{"graphite with tags", "  graphite_tag_support = true\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{})
			conf := writeFile(t, dir, "g.conf", input+fmt.Sprintf("[[outputs.graphite_statsd]]\n  servers = [%q]\n  prefix = \"sec\"\n%s", sink.Addr, tc.extra))
			_, stderr, code := runBinary(t, bin, "", "-config", conf, "-once")
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			drain(t, sink)
			lines := sink.Lines()
			if len(lines) < 100 {
				t.Fatalf("%d lines", len(lines))
			}
			evil := 0
			for _, line := range lines {
				m := graphiteLine.FindStringSubmatch(line)
				if m == nil {
					t.Errorf("not a Graphite line: %q", line)
					continue
				}
				if strings.HasPrefix(line, "injected") {
					t.Errorf("injected line: %q", line)
				}
				if !strings.HasPrefix(m[1], "sec") {
					t.Errorf("path %q does not start with the prefix", m[1])
				}
				if strings.Contains(m[1], "evil") {
					evil++
					if tc.extra == "" && !pathLevels(m[1], host) {
						t.Errorf("path %q: a name added a level", m[1])
					}
				}
			}
			if evil == 0 {
				t.Error("the tampered proxy's metrics did not arrive at all")
			}
		})
	}

	t.Run("statsd", func(t *testing.T) {
		udp := testbed.NewUDPSink(t)
		_, stderr, code := runBinary(t, bin, "", "--backend", udp.Addr+"::sec", "--sockets", sock.Path)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		gauge := regexp.MustCompile(`^[^:|@\s]+:-?[0-9.]+\|g$`)
		var n, evil int
		waitUntil(t, 10*time.Second, "statsd datagrams", func() bool { return len(udp.Datagrams()) > 0 })
		for _, d := range udp.Datagrams() {
			for _, line := range strings.Split(strings.TrimSuffix(string(d), "\n"), "\n") {
				n++
				if !gauge.MatchString(line) {
					t.Errorf("not a statsd gauge: %q", line)
				}
				if strings.Contains(line, "evil") {
					evil++
				}
			}
		}
		if n == 0 || evil == 0 {
			t.Errorf("%d gauges, %d of the tampered proxy", n, evil)
		}
	})
}

// pathLevels reports whether a path of the tampered proxy has the
// original's levels: sec.<host>.1.<proxy>.<server>.<field>, the field
// one level more for status.<STATE>, servers.<STATE> and http_response.<class>.
func pathLevels(path, host string) bool {
	parts := strings.Split(path, ".")
	if len(parts) < 6 || parts[0] != "sec" || parts[1] != host || parts[2] != "1" || !strings.HasPrefix(parts[3], "evil") {
		return false
	}
	if p := parts[len(parts)-2]; p == "status" || p == "http_response" || p == "servers" {
		return len(parts) == 7
	}
	return len(parts) == 6
}
