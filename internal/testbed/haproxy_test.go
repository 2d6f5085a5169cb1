package testbed

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestHAProxyScenario(t *testing.T) {
	h := NewHAProxy(t, HAProxyOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	out, err := h.Command(ctx, "show stat")
	if err != nil {
		t.Fatal(err)
	}
	for proxy, servers := range ScenarioStatus {
		for server, want := range servers {
			got, err := statusOf(out, proxy, server)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got, want) {
				t.Errorf("%s/%s status = %q, want %q", proxy, server, got, want)
			}
		}
	}
	for _, sv := range []string{"web-1", "web-4"} {
		// "* " marks a check under way (the checks run every 100 ms): what
		// follows is the last one's result.
		if got, err := columnOf(out, ScenarioBackend, sv, "check_status"); err != nil || strings.TrimPrefix(got, "* ") != "L7OK" {
			t.Errorf("%s/%s check_status = %q, %v; want L7OK (its check to the live listener passed)", ScenarioBackend, sv, got, err)
		}
	}
	for _, px := range []string{ScenarioFrontend, ScenarioTCP} {
		if got, err := statusOf(out, px, "FRONTEND"); err != nil || got != "OPEN" {
			t.Errorf("%s/FRONTEND status = %q, %v; want OPEN", px, got, err)
		}
	}

	// Changing state through the admin socket is seen by WaitStatus.
	if _, err := h.Command(ctx, "disable server "+ScenarioBackend+"/web-1"); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitStatus(ctx, ScenarioBackend, "web-1", "MAINT"); err != nil {
		t.Fatal(err)
	}
}

func TestHAProxySockets(t *testing.T) {
	h := NewHAProxy(t, HAProxyOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The user-level socket reads statistics but refuses admin commands.
	out, err := SocketCommand(ctx, "unix", h.UserSocket, "show info")
	if err != nil || !strings.Contains(out, "Name: HAProxy") {
		t.Fatalf("show info on the user socket = %q, %v", out, err)
	}
	out, err = SocketCommand(ctx, "unix", h.UserSocket, "disable server "+ScenarioBackend+"/web-1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Permission denied") {
		t.Errorf("admin command on the user socket answered %q, want Permission denied", out)
	}
	if got, err := h.Status(ctx, ScenarioBackend, "web-1"); err != nil || got != "UP" {
		t.Errorf("web-1 after a refused disable = %q, %v; want UP", got, err)
	}

	// The TCP stats socket answers.
	data, err := SocketCommand(ctx, "tcp", h.TCPAddr, "show stat")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := statusOf(data, ScenarioTCP, ScenarioTCPSrv); err != nil || got != "UP" {
		t.Errorf("%s/%s over %s = %q, %v; want UP", ScenarioTCP, ScenarioTCPSrv, h.TCPAddr, got, err)
	}
}

func TestHAProxyStatsPage(t *testing.T) {
	h := NewHAProxy(t, HAProxyOptions{})
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(url string, auth bool) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url+";csv", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth {
			req.SetBasicAuth("admin", "secret")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	code, body := get(h.StatsURL, false)
	if code != http.StatusOK || !strings.HasPrefix(body, "# pxname,svname,") {
		t.Errorf("GET %s;csv = %d %.60q, want 200 and the CSV header", h.StatsURL, code, body)
	}
	if code, _ := get(h.AuthStatsURL, false); code != http.StatusUnauthorized {
		t.Errorf("GET %s;csv without credentials = %d, want 401", h.AuthStatsURL, code)
	}
	code, body = get(h.AuthStatsURL, true)
	if code != http.StatusOK {
		t.Fatalf("GET %s;csv with credentials = %d, want 200", h.AuthStatsURL, code)
	}
	if got, err := statusOf(body, ScenarioBackend, "web-2"); err != nil || got != "DOWN" {
		t.Errorf("web-2 on the stats page = %q, %v; want DOWN", got, err)
	}
}

func TestHAProxyCloseLeavesNothing(t *testing.T) {
	NeedsPeer(t, "HAProxy")
	h, err := StartHAProxy(context.Background(), HAProxyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pid := h.PID
	if !processAlive(pid) {
		t.Fatalf("haproxy pid %d not running after start", pid)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if processAlive(pid) {
		t.Errorf("haproxy pid %d still running after Close", pid)
	}
	if _, err := os.Stat(h.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close (stat: %v)", h.Dir, err)
	}
	if err := h.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestHAProxyGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 1000 proxies of 10 checked servers")
	}
	h := NewHAProxy(t, HAProxyOptions{Backends: 1000, ServersPerBackend: 10, Checks: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := h.Command(ctx, "show stat")
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Count(out, "\n") - 2 // header and closing empty line
	if rows < 12000 {
		t.Errorf("show stat answered %d rows, want at least 12000", rows)
	}
	last, srv := GeneratedBackend(1000), GeneratedServer(10)
	if err := h.WaitStatus(ctx, last, srv, "UP"); err != nil {
		t.Error(err)
	}
	if got, err := statusOf(out, last, "FRONTEND"); err != nil || got != "OPEN" {
		t.Errorf("%s/FRONTEND = %q, %v; want OPEN", last, got, err)
	}
}

func TestHAProxyGeneratedWithExtra(t *testing.T) {
	h := NewHAProxy(t, HAProxyOptions{
		Backends: 3, ServersPerBackend: 2,
		Extra: "backend extra_px\n\tserver extra_srv 127.0.0.1:9 disabled\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.Command(ctx, "show stat")
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range [][3]string{
		{GeneratedBackend(1), GeneratedServer(1), "no check"},
		{GeneratedBackend(3), GeneratedServer(2), "no check"},
		{GeneratedBackend(3), "FRONTEND", "OPEN"},
		{"extra_px", "extra_srv", "MAINT"},
	} {
		if got, err := statusOf(out, row[0], row[1]); err != nil || got != row[2] {
			t.Errorf("%s/%s = %q, %v; want %q", row[0], row[1], got, err, row[2])
		}
	}
	if _, err := statusOf(out, GeneratedBackend(4), GeneratedServer(1)); err == nil {
		t.Errorf("%s exists with Backends = 3", GeneratedBackend(4))
	}
}
