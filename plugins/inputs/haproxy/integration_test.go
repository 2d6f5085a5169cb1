package haproxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// scenarioState maps a status of the standard scenario to its field.
var scenarioState = map[string]string{"UP": "UP", "DOWN": "DOWN", "MAINT": "MAINT", "DRAIN": "DRAIN", "no check": "NOCHECK"}

func TestIntegrationRealHAProxy(t *testing.T) {
	hp := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	authURL := strings.Replace(hp.AuthStatsURL, "http://", "http://admin:secret@", 1)
	tests := []struct {
		name      string
		h         HAProxy
		serverTag string
		info      bool
	}{
		{"admin socket", HAProxy{Servers: []string{hp.AdminSocket}}, hp.AdminSocket, true},
		{"user-level socket", HAProxy{Servers: []string{"socket:" + hp.UserSocket}}, hp.UserSocket, true},
		{"tcp socket", HAProxy{Servers: []string{"tcp://" + hp.TCPAddr}}, hp.TCPAddr, true},
		{"stats page", HAProxy{Servers: []string{hp.StatsURL}}, urlHost(hp.StatsURL), false},
		{"stats page, auth in URL", HAProxy{Servers: []string{authURL}}, urlHost(hp.AuthStatsURL), false},
		{"stats page, auth options", HAProxy{Servers: []string{hp.AuthStatsURL}, Username: "admin", Password: "secret"}, urlHost(hp.AuthStatsURL), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newPlugin(t, &tt.h)
			ms, errs := gather(t, h)
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			checkScenario(t, ms, tt.serverTag)
			if got := count(ms, "haproxy_info"); (got == 1) != tt.info {
				t.Errorf("%d haproxy_info metrics", got)
			}
		})
	}

	t.Run("stats page without credentials", func(t *testing.T) {
		h := newPlugin(t, &HAProxy{Servers: []string{hp.AuthStatsURL}})
		_, errs := gather(t, h)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "401") || !strings.Contains(errs[0].Error(), urlHost(hp.AuthStatsURL)) {
			t.Errorf("errors = %v, want one 401 naming the page", errs)
		}
	})

	t.Run("types and proxies sent to HAProxy", func(t *testing.T) {
		h := newPlugin(t, &HAProxy{Servers: []string{hp.UserSocket}, Types: []string{"server"}, Proxies: []string{testbed.ScenarioBackend, "no-such-proxy"}})
		ms, errs := gather(t, h)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), `proxy "no-such-proxy"`) {
			t.Errorf("errors = %v, want one naming the missing proxy", errs)
		}
		if n := count(ms, "haproxy"); n != len(testbed.ScenarioStatus[testbed.ScenarioBackend]) {
			t.Errorf("%d rows, want the %d servers of %s", n, len(testbed.ScenarioStatus[testbed.ScenarioBackend]), testbed.ScenarioBackend)
		}
	})

	// Last, as it changes the load balancer: a server put into maintenance
	// shows status.MAINT=1 on the next gather.
	t.Run("set server state maint", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := hp.Command(ctx, "set server "+testbed.ScenarioBackend+"/web-1 state maint"); err != nil {
			t.Fatal(err)
		}
		if err := hp.WaitStatus(ctx, testbed.ScenarioBackend, "web-1", "MAINT"); err != nil {
			t.Fatal(err)
		}
		h := newPlugin(t, &HAProxy{Servers: []string{hp.UserSocket}})
		ms, errs := gather(t, h)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		m := row(ms, testbed.ScenarioBackend, "web-1")
		if m == nil {
			t.Fatal("no web-1 row")
		}
		checkStatus(t, m, ServerStates, StateMaint)
	})
}

// checkScenario asserts every row of the standard scenario a user checks.
func checkScenario(t *testing.T, ms []telegraf.Metric, serverTag string) {
	t.Helper()
	for proxy, servers := range testbed.ScenarioStatus {
		for sv, status := range servers {
			m := row(ms, proxy, sv)
			if m == nil {
				t.Errorf("no metric for %s/%s", proxy, sv)
				continue
			}
			if got, _ := m.GetTag("server"); got != serverTag {
				t.Errorf("%s/%s: server tag %q, want %q", proxy, sv, got, serverTag)
			}
			if got, _ := m.GetTag("process_num"); got != "1" {
				t.Errorf("%s/%s: process_num tag %q, want 1", proxy, sv, got)
			}
			if got, _ := m.GetField("status"); got != status {
				t.Errorf("%s/%s: status %v, want %q", proxy, sv, got, status)
			}
			checkStatus(t, m, ServerStates, scenarioState[status])
		}
	}
	fe := row(ms, testbed.ScenarioFrontend, "FRONTEND")
	if fe == nil {
		t.Fatal("no frontend row")
	}
	checkStatus(t, fe, FrontendStates, StateOpen)
	if _, ok := row(ms, testbed.ScenarioTCP, "FRONTEND").GetField("http_response.2xx"); ok {
		t.Error("TCP frontend has http_response.2xx")
	}
}

func urlHost(u string) string {
	ep, err := parseHTTPServer(u)
	if err != nil {
		panic(err)
	}
	return ep.tag
}
