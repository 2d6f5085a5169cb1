package haproxy

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// counts is a backend's expected servers.<STATE> fields; a state left out
// is expected at 0.
type counts map[string]int64

// checkCounts asserts every servers.<STATE> field of m: present, int64,
// at the count want gives.
func checkCounts(t *testing.T, m telegraf.Metric, want counts) {
	t.Helper()
	for _, s := range ServerStates {
		v, ok := m.GetField("servers." + s)
		if !ok {
			t.Errorf("%s: field servers.%s missing", describeMetric(m), s)
			continue
		}
		if v != want[s] {
			t.Errorf("%s: servers.%s = %#v, want int64(%d)", describeMetric(m), s, v, want[s])
		}
	}
}

// hasCounts reports whether m has any servers.* field.
func hasCounts(m telegraf.Metric) bool {
	for _, f := range m.FieldList() {
		if strings.HasPrefix(f.Key, "servers.") {
			return true
		}
	}
	return false
}

func TestServerCountsRecorded(t *testing.T) {
	tests := []struct {
		file string
		page bool
		want map[string]counts // proxy -> its BACKEND row's counts
	}{
		{"haproxy-2.6.12.txt", false, map[string]counts{
			"app.v1":   {"UP": 1, "DOWN": 1, "MAINT": 1, "DRAIN": 1, "NOCHECK": 1},
			"db_tcp-1": {"UP": 1},
			"stats":    {}, // no server: every count at 0
		}},
		{"haproxy-2.6.12-page.csv", true, map[string]counts{
			"app.v1":   {"UP": 1, "DOWN": 1, "MAINT": 1, "DRAIN": 1, "NOCHECK": 1},
			"db_tcp-1": {"UP": 1},
			"stats":    {},
		}},
		// UP 1/3 is UP, DOWN 1/2 is DOWN, MAINT (via ...) is MAINT.
		{"haproxy-1.5.csv", false, map[string]counts{
			"app.v1":   {"UP": 2, "DOWN": 2, "NOLB": 1, "DRAIN": 1, "MAINT": 1, "NOCHECK": 1},
			"db_tcp-1": {"UP": 1},
		}},
		{"haproxy-1.7.csv", false, map[string]counts{
			"app.v1": {"UP": 1, "DOWN": 1, "DRAIN": 1, "MAINT": 1, "NOCHECK": 1},
		}},
		{"haproxy-3.x.csv", false, map[string]counts{
			"app.v1": {"UP": 1, "MAINT": 1, "NOLB": 1, "DRAIN": 1, "OTHER": 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			h := newPlugin(t, &HAProxy{Servers: []string{testSocketTag}})
			ms, err := readAnswer(t, h, readTestdata(t, tt.file), tt.page)
			if err != nil {
				t.Fatal(err)
			}
			for proxy, want := range tt.want {
				m := row(ms, proxy, "BACKEND")
				if m == nil {
					t.Errorf("no BACKEND row for %s", proxy)
					continue
				}
				checkCounts(t, m, want)
			}
			for _, m := range ms {
				if typ, _ := m.GetTag("type"); typ != "backend" && hasCounts(m) {
					t.Errorf("%s: a %s row has servers.* fields", describeMetric(m), typ)
				}
			}
		})
	}
}

// TestServerCountsOptions: the counts follow keep_field_names, the field
// filter and the row types read.
func TestServerCountsOptions(t *testing.T) {
	appCounts := counts{"UP": 1, "DOWN": 1, "MAINT": 1, "DRAIN": 1, "NOCHECK": 1}
	tests := []struct {
		name   string
		h      HAProxy
		file   string
		page   bool
		fields []string // the servers.* fields of app.v1's BACKEND row; nil: none
	}{
		{"keep_field_names keeps the names", HAProxy{KeepFieldNames: true}, "haproxy-2.6.12.txt", false, ServerStates},
		{"include_fields", HAProxy{IncludeFields: []string{"servers.UP", "servers.DOWN"}}, "haproxy-2.6.12.txt", false, []string{"UP", "DOWN"}},
		{"exclude_fields", HAProxy{ExcludeFields: []string{"servers.*"}}, "haproxy-2.6.12.txt", false, nil},
		{"socket, backends and servers", HAProxy{Types: []string{"backend", "server"}}, "haproxy-2.6.12.txt", false, ServerStates},
		// HAProxy sends no server row: no count rather than wrong zeros.
		{"socket, backends only", HAProxy{Types: []string{"backend"}}, "haproxy-2.6.12.txt", false, nil},
		// A stats page lists every row: its servers are counted, not emitted.
		{"page, backends only", HAProxy{Types: []string{"backend"}}, "haproxy-2.6.12-page.csv", true, ServerStates},
		{"page, one proxy", HAProxy{Proxies: []string{"app.v1"}}, "haproxy-2.6.12-page.csv", true, ServerStates},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.h.Servers = []string{testSocketTag}
			h := newPlugin(t, &tt.h)
			ms, err := readAnswer(t, h, readTestdata(t, tt.file), tt.page)
			if err != nil {
				t.Fatal(err)
			}
			tags := map[string]string{"proxy": "app.v1", "sv": "BACKEND"}
			if tt.h.KeepFieldNames {
				tags = map[string]string{"pxname": "app.v1", "svname": "BACKEND"}
			}
			be := find(ms, "haproxy", tags)
			if be == nil {
				t.Fatal("no BACKEND row for app.v1")
			}
			var got []string
			for _, f := range be.FieldList() {
				if s, ok := strings.CutPrefix(f.Key, "servers."); ok {
					got = append(got, s)
					if f.Value != appCounts[s] {
						t.Errorf("%s = %#v, want int64(%d)", f.Key, f.Value, appCounts[s])
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.fields) {
				t.Errorf("servers.* fields %v, want %v", got, tt.fields)
			}
			if !tt.page || len(tt.h.Types) == 0 {
				return
			}
			for _, m := range ms { // a page's rows are filtered here
				if typ, _ := m.GetTag("type"); m.Name() == "haproxy" && typ != "backend" {
					t.Errorf("%s: a %s row emitted with types = [backend]", describeMetric(m), typ)
				}
			}
		})
	}
}

// TestServerCountsRealHAProxy counts the servers of a real HAProxy's
// backend in every state it gives on demand, backup servers included, and
// follows state changes made over the admin socket.
func TestServerCountsRealHAProxy(t *testing.T) {
	live := liveTCP(t)
	dead := testbed.ClosedAddr(t)
	// Checks every 100 ms, one to change state.
	hp := testbed.NewHAProxy(t, testbed.HAProxyOptions{Extra: fmt.Sprintf(`backend pool
	mode tcp
	default-server inter 100ms fall 1 rise 1
	server up-1 %[1]s check
	server up-2 %[1]s check
	server down-1 %[2]s check
	server drain-1 %[1]s check
	server maint-1 %[1]s check
	server nocheck-1 %[1]s
	server backup-up %[1]s check backup
	server backup-down %[2]s check backup
	server backup-nocheck %[1]s backup
`, live, dead)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	set := func(server, state string) {
		t.Helper()
		if out, err := hp.Command(ctx, "set server pool/"+server+" state "+state); err != nil || strings.TrimSpace(out) != "" {
			t.Fatalf("set server pool/%s state %s: %q %v", server, state, out, err)
		}
	}
	set("drain-1", "drain")
	set("maint-1", "maint")
	settled := map[string]string{"up-1": "UP", "up-2": "UP", "down-1": "DOWN", "drain-1": "DRAIN", "maint-1": "MAINT",
		"nocheck-1": "no check", "backup-up": "UP", "backup-down": "DOWN", "backup-nocheck": "no check"}
	for sv, st := range settled {
		if err := hp.WaitStatus(ctx, "pool", sv, st); err != nil {
			t.Fatal(err)
		}
	}
	want := counts{"UP": 3, "DOWN": 2, "DRAIN": 1, "MAINT": 1, "NOCHECK": 2}
	for _, server := range []string{hp.UserSocket, "tcp://" + hp.TCPAddr, hp.StatsURL} {
		t.Run(server, func(t *testing.T) {
			h := newPlugin(t, &HAProxy{Servers: []string{server}})
			ms, errs := gather(t, h)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			be := row(ms, "pool", "BACKEND")
			if be == nil {
				t.Fatal("no BACKEND row for pool")
			}
			checkCounts(t, be, want)
			checkCounts(t, row(ms, testbed.ScenarioBackend, "BACKEND"), counts{"UP": 1, "DOWN": 1, "MAINT": 1, "DRAIN": 1, "NOCHECK": 1})
		})
	}

	t.Run("state changes", func(t *testing.T) {
		set("up-2", "maint")
		set("drain-1", "ready")
		for sv, st := range map[string]string{"up-2": "MAINT", "drain-1": "UP"} {
			if err := hp.WaitStatus(ctx, "pool", sv, st); err != nil {
				t.Fatal(err)
			}
		}
		h := newPlugin(t, &HAProxy{Servers: []string{hp.UserSocket}})
		ms, errs := gather(t, h)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		checkCounts(t, row(ms, "pool", "BACKEND"), counts{"UP": 3, "DOWN": 2, "MAINT": 2, "NOCHECK": 2})
	})

	t.Run("backends only", func(t *testing.T) {
		h := newPlugin(t, &HAProxy{Servers: []string{hp.UserSocket}, Types: []string{"backend"}})
		ms, errs := gather(t, h)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		be := row(ms, "pool", "BACKEND")
		if be == nil || hasCounts(be) {
			t.Errorf("backend row %v: want it without servers.* (HAProxy sent no server row)", be)
		}
	})
}

// liveTCP returns the address of a loopback listener that accepts and
// closes connections until the test ends: health checks pass on it.
func liveTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}
