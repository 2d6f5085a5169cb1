package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

var (
	pictures = flag.String("pictures", "", "write PNG pictures of the key panels, rendered by graphite-web, into this dir")
	traffic  = flag.Duration("traffic", 30*time.Second, "how long the live test sends traffic to HAProxy")
)

// host is the [agent] hostname of the test's hap-monitor runs.
const host = "web01"

// certDays are the days left of the certificates fe_tls serves, by file
// name: one expires within 14 days, one has expired.
var certDays = map[string]int{"soon.pem": 10, "later.pem": 60, "expired.pem": -3}

// certFrontend makes the certificates of certDays and returns a frontend
// serving them (on a unix socket in a short temp dir).
func certFrontend(t *testing.T) string {
	t.Helper()
	dir := testbed.ShortTempDir(t) // the frontends bind unix sockets here
	pki := testbed.NewPKI(t)
	conf := "frontend fe_tls\n\tbind unix@" + filepath.Join(dir, "tls.sock") + " ssl"
	now := time.Now()
	for name, days := range certDays {
		path := filepath.Join(dir, name)
		notAfter := now.Add(time.Duration(days) * 24 * time.Hour)
		notBefore := now.Add(-time.Hour)
		if days < 0 {
			notBefore = notAfter.Add(-90 * 24 * time.Hour)
		}
		if _, err := pki.WriteServedCert(path, testbed.CertSpec{CommonName: name, DNSNames: []string{strings.TrimSuffix(name, ".pem") + ".example.org"},
			NotBefore: notBefore, NotAfter: notAfter}); err != nil {
			t.Fatal(err)
		}
		certPaths[name] = path
		conf += " crt " + path
	}
	return conf + "\n\n"
}

// certPaths are certDays' files' paths, as certFrontend made them.
var certPaths = map[string]string{}

// renewals is what HAProxy renews itself, through Pebble (its directory,
// the port on which Pebble fetches challenges, and the CA HAProxy trusts
// it by to fill in), an ACME server that cannot be reached (its
// directory), and an OCSP responder that cannot either (its URL):
// renewed.pem, whose name resolves to HAProxy's challenge frontend, is
// renewed; refused.pem, whose name resolves nowhere, fails its challenge
// and is overdue; retrying.pem is under way while HAProxy retries; the
// OCSP update of stapled.pem fails.
func renewals(t *testing.T, pki *testbed.PKI, pebble *testbed.Pebble, unreachable, ocspURL string) (global, extra string) {
	t.Helper()
	dir := testbed.ShortTempDir(t)
	now := time.Now()
	// Due for renewal (a twelfth of the validity left), not within 14
	// days of expiry.
	due := testbed.CertSpec{NotBefore: now.Add(-360 * 24 * time.Hour), NotAfter: now.Add(20 * 24 * time.Hour)}
	write := func(name, domain string, spec testbed.CertSpec) string {
		spec.CommonName, spec.DNSNames = domain, []string{domain}
		path := filepath.Join(dir, name)
		if _, err := pki.WriteServedCert(path, spec); err != nil {
			t.Fatal(err)
		}
		return path
	}
	renewed, refused, retrying := write("renewed.pem", "renewed.test", due), write("refused.pem", "gone.test", due), write("retrying.pem", "retrying.test", due)
	stapled := write("stapled.pem", "stapled.test", testbed.CertSpec{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(60 * 24 * time.Hour), OCSPServer: ocspURL})
	global = "expose-experimental-directives\nhttpclient.resolvers.id dns\nhttpclient.resolvers.prefer ipv4\nhttpclient.ssl.ca-file " + pki.CAFile
	extra = fmt.Sprintf(`acme pebble
	directory %s
	contact test@example.org
	challenge HTTP-01
	map virt@acme

acme unreachable
	directory %s
	contact test@example.org
	challenge HTTP-01
	map virt@acme

crt-store
	load crt %s acme pebble domains renewed.test
	load crt %s acme pebble domains gone.test
	load crt %s acme unreachable domains retrying.test
	load crt %s ocsp-update on

frontend fe_acme
	bind 127.0.0.1:%d
	bind unix@%s ssl crt %s crt %s crt %s crt %s
	http-request return status 200 content-type text/plain lf-string "%%[path,field(-1,/)].%%[path,field(-1,/),map(virt@acme)]" if { path_beg '/.well-known/acme-challenge/' }

`, pebble.Directory, unreachable, renewed, refused, retrying, stapled, pebble.HTTPPort, filepath.Join(dir, "acme.sock"), renewed, refused, retrying, stapled)
	return global, extra
}

// pairSections is the HA pair's peers section (pa's and pb's addresses
// to fill in), with a shared table.
const pairSections = `peers mypeers
	peer pa %s
	peer pb %s
	table t1 type ip size 1k expire 10m store gpc0

`

// discovery is a resolvers section (its nameserver to fill in) and a
// server-template backend that uses it.
const discovery = `resolvers dns
	nameserver ns1 %s
	hold valid 1s

backend be_dns
	server-template srv 2 app.test:8080 resolvers dns init-addr none

`

// stickTable is a backend with a stick table the test puts one entry in.
const stickTable = `backend sticky
	stick-table type ip size 100 expire 10m store gpc0
`

// TestQueriesAgainstGraphiteWeb runs hap-monitor against a real HAProxy
// serving real traffic (2xx and the 5xx the test asks its servers for,
// a server taken DOWN, a failed reload), into a real carbon-cache, and
// asks a real graphite-web every query of the dashboard, with the
// variables resolved as Grafana resolves them: each target returns series
// with data, and some return the numbers the test caused. The same
// panels are asked of the original's command line (prefix orig.haproxy,
// field names hrsp_) and of statsd (prefix stats.gauges.<prefix>).
func TestQueriesAgainstGraphiteWeb(t *testing.T) {
	testbed.NeedsPeer(t, "HAProxy, carbon-cache, graphite-web, statsd and Node.js")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute+2**traffic)
	defer cancel()

	// An HA pair (this HAProxy, pa, and a second one, pb) and a backend
	// found through DNS.
	// HAProxy 3.4, the newest of the matrix, has every command the
	// dashboard shows (ACME renewals: 3.2).
	haproxy, err := testbed.ReleaseBinary(ctx, "3.4")
	if err != nil {
		t.Fatal(err)
	}
	dns := testbed.NewDNS(t, map[string]string{"app.test": "127.0.0.1", "acme.test": "127.0.0.1", "renewed.test": "127.0.0.1"})
	pa, pb := testbed.ClosedAddr(t), testbed.ClosedAddr(t)
	pair := fmt.Sprintf(pairSections, pa, pb)
	pki := testbed.NewPKI(t)
	pebble := testbed.NewPebbleWith(t, pki, "acme.test", testbed.PebbleOptions{Resolver: dns.Addr})
	acmeGlobal, acmeSections := renewals(t, pki, pebble, "https://"+testbed.ClosedAddr(t)+"/dir", "http://"+testbed.ClosedAddr(t))
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{Binary: haproxy, MasterWorker: true, Global: "localpeer pa\n" + acmeGlobal,
		Extra: stickTable + certFrontend(t) + pair + fmt.Sprintf(discovery, dns.Addr) + acmeSections})
	testbed.NewHAProxy(t, testbed.HAProxyOptions{Binary: haproxy, Global: "localpeer pb", Extra: pair})
	c := testbed.NewCarbon(t)
	g := testbed.NewGraphiteWeb(t, c)
	sd := testbed.NewStatsd(t, c.TCPAddr)
	bin, err := testbed.HapMonitorBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	graphiteRun := startHapMonitor(t, bin, writeConf(t, dir, "graphite.conf", fmt.Sprintf(`[[outputs.graphite_statsd]]
  servers = [%q]
  prefix = %q
`, c.TCPAddr, DefaultPrefix), "master:"+h.MasterSocket))
	// statsd reads its UDP datagrams one at a time: HAProxy 3.4's 214
	// columns a row, 94 of them QUIC, HTTP/3 and the like, which this
	// test bed does not serve, are more than statsd 0.9.0 reads here
	// without the kernel dropping some (docs/dashboard.md).
	statsdRun := startHapMonitor(t, bin, writeConf(t, dir, "statsd.conf", `  fieldexclude = ["quic_*", "h3_*", "qpack_*"]
`+fmt.Sprintf(`[[outputs.graphite_statsd]]
  format = "statsd"
  servers = [%q]
  prefix = %q
`, sd.Addr, DefaultPrefix), h.AdminSocket))

	sent := sendTraffic(ctx, t, h, *traffic)

	// The original's crontab line, three times a second apart.
	for range 3 {
		out, err := exec.CommandContext(ctx, bin, "--backend", c.TCPAddr+"::orig.haproxy", "--type", "G",
			"--protocol", "tcp", "--sockets", h.AdminSocket).CombinedOutput()
		if err != nil {
			t.Fatalf("the original's command line: %v: %s", err, out)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(3 * time.Second) // the last gathers, and statsd's flush
	graphiteRun.stop(t)
	statsdRun.stop(t)

	js := newRegexEngine(t)
	for _, tc := range []struct {
		name, prefix, responses string
		// without: panels this way of sending has no data for.
		without []string
		// host is the host level: the [agent] hostname, or the machine's
		// short name for the original's command line.
		host string
		// server is the name of web:3 on these paths.
		server string
	}{
		{name: "config file", prefix: DefaultPrefix, responses: "http_response.", host: host, server: "web:3"},
		{name: "original command line", prefix: "orig.haproxy", responses: "hrsp_", host: shortHostname(t), server: "web:3",
			// The original's field set: scur, qcur, chkfail, status.*,
			// hrsp_*, req_rate, rate, qtime, ctime, rtime, ttime, Idle_pct;
			// one socket, no master.
			without: []string{"Bytes per second", "Servers by state", "Connections", "Failed reloads", "Reloads", "Workers and old workers", "Stick tables, % full", "Stick table entries",
				"Certificates expiring within 14 days", "Days left per certificate", "Peers connected", "Replication backlog", "DNS answers and errors per second",
				"ACME renewals overdue", "ACME renewals under way", "Days until each ACME renewal", "OCSP updates failing", "OCSP update failures"}},
		{name: "statsd", prefix: testbed.StatsdStatsPrefix + DefaultPrefix, responses: "http_response.", host: host, server: "web_3",
			without: []string{"Failed reloads", "Reloads", "Workers and old workers"}}, // a stats socket, not the master CLI
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := resolveVariables(ctx, t, g, js, map[string]string{"prefix": tc.prefix, "responses": tc.responses})
			checkOptions(t, vars, tc.host, tc.server)
			results := askPanels(ctx, t, g, vars, tc.without)
			during := tc.name != "original command line" // its runs come after the traffic
			checkNumbers(t, results, sent, tc.host, tc.name == "config file", during, tc.name != "original command line")
			// The counter itself: every 503 the servers sent, counted once.
			raw := vars.interpolate("$prefix.$host.$process." + strings.ReplaceAll(testbed.ScenarioFrontend, ".", "_") + ".FRONTEND.${responses}5xx")
			series, err := g.Render(ctx, raw, "-10min")
			if err != nil {
				t.Fatal(err)
			}
			if len(series) != 1 {
				t.Fatalf("%s: %d series", raw, len(series))
			}
			if v, ok := series[0].Last(); !ok || v != float64(sent.errors) {
				t.Errorf("%s = %v (%v), want the %d 503s sent", raw, v, ok, sent.errors)
			}
			if *pictures != "" && tc.name == "config file" {
				// One frontend and one backend, as a user looks at them.
				one := resolveVariables(ctx, t, g, js, map[string]string{"prefix": tc.prefix, "responses": tc.responses,
					"frontend": "www_example-fe", "backend": "app_v1"})
				writePictures(ctx, t, g, one, sent.start, *pictures)
			}
		})
	}
}

// shortHostname is the host level of the original's command line: the
// machine's name up to its first dot.
func shortHostname(t *testing.T) string {
	name, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	short, _, _ := strings.Cut(name, ".")
	return short
}

// writeConf writes a hap-monitor config: one gather a second of sockets
// (an inputs.haproxy server entry) to output.
func writeConf(t *testing.T, dir, name, output, socket string) string {
	t.Helper()
	conf := fmt.Sprintf(`[agent]
  interval = "1s"
  flush_interval = "1s"
  hostname = %q
[[inputs.haproxy]]
  servers = [%q]
%s`, host, socket, output)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type run struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	conf   string
}

func startHapMonitor(t *testing.T, bin, conf string) *run {
	t.Helper()
	r := &run{conf: conf}
	r.cmd = exec.Command(bin, "-config", conf)
	r.cmd.Stderr = &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.cmd.Process.Kill() })
	return r
}

// stop ends the run with SIGTERM, as systemd does, and fails t unless it
// ended well.
func (r *run) stop(t *testing.T) {
	t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("hap-monitor -config %s: %v: %s", r.conf, err, r.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("hap-monitor -config %s did not stop within 30s of SIGTERM: %s", r.conf, r.stderr.String())
	}
}

// sent is what the test did to HAProxy.
type sent struct {
	ok, errors int    // requests answered 200, and 503 by the server, since the reload
	allErrors  int    // 503s over the whole run
	down       string // the server the test took DOWN
	start      time.Time
}

// sendTraffic sends requests to the scenario's frontend for d, in four
// parts. Between the first two, HAProxy reloads while a TCP session holds
// the old worker, which ends with the session after the second part;
// then web-1 goes DOWN (its checks go to a closed port); before the last
// part a reload fails. The rate goes up and down, so the graphs have a
// shape; one request in eight asks the server for a 503.
func sendTraffic(ctx context.Context, t *testing.T, h *testbed.HAProxy, d time.Duration) sent {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	s := sent{start: start}
	send := func(until time.Duration) {
		t.Helper()
		for i := 0; ; i++ {
			elapsed := time.Since(start)
			if elapsed >= until || ctx.Err() != nil {
				return
			}
			path, want := "/", http.StatusOK
			if i%8 == 7 {
				path, want = "/status/503", http.StatusServiceUnavailable
			}
			resp, err := client.Get("http://" + h.FrontendAddr + path)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("GET %s: %s, want %d", path, resp.Status, want)
			}
			if want == http.StatusOK {
				s.ok++
			} else {
				s.errors++
				s.allErrors++
			}
			// 5 to 45 requests a second, a wave of period d/2.
			rate := 25 + 20*math.Sin(4*math.Pi*elapsed.Seconds()/d.Seconds())
			time.Sleep(time.Duration(float64(time.Second) / rate))
		}
	}
	send(d / 4)

	held, err := h.HoldConnection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	s.ok, s.errors = 0, 0 // the new worker counts from 0
	// The stick table is the new worker's.
	if _, err := h.Command(ctx, "set table sticky key 10.0.0.1 data.gpc0 1"); err != nil {
		t.Fatal(err)
	}
	send(d / 2)
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.down = "web-1"
	if _, err := h.Command(ctx, fmt.Sprintf("set server %s/%s addr 127.0.0.1 port %d", testbed.ScenarioBackend, s.down, dead)); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitStatus(ctx, testbed.ScenarioBackend, s.down, "DOWN"); err != nil {
		t.Fatal(err)
	}
	send(3 * d / 4)

	p, err := h.FailReload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.FailedReloads != 1 {
		t.Fatalf("after a failed reload the master counts %d failed reloads", p.FailedReloads)
	}
	send(d)
	t.Logf("%d requests answered 503 in %v; since the reload, %d answered 200 and %d 503; %s DOWN; one failed reload", s.allErrors, d, s.ok, s.errors, s.down)
	return s
}

// regexEngine applies a variable's regex to the names a query found, in
// Node.js: the JavaScript engine Grafana's own code runs in.
type regexEngine struct{ node string }

func newRegexEngine(t *testing.T) regexEngine {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node: %v (apt-get install nodejs)", err)
	}
	return regexEngine{node: node}
}

// regexScript keeps the names the regex matches, each as its first
// capture group if it has one, else whole, without repeats: what
// Grafana's query variable does with its regex.
const regexScript = `
const [pattern, names] = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const m = pattern.match(/^\/(.*)\/([gimsuy]*)$/);
const re = new RegExp(m[1], m[2]);
const out = [];
for (const name of names) {
  const r = re.exec(name);
  if (!r) continue;
  const v = r.length > 1 && r[1] !== undefined ? r[1] : name;
  if (!out.includes(v)) out.push(v);
}
process.stdout.write(JSON.stringify(out));
`

func (e regexEngine) apply(t *testing.T, pattern string, names []string) []string {
	t.Helper()
	in, _ := json.Marshal([]any{pattern, names})
	cmd := exec.Command(e.node, "-e", regexScript)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node, regex %s: %v", pattern, err)
	}
	var kept []string
	if err := json.Unmarshal(out, &kept); err != nil {
		t.Fatalf("node, regex %s: %v: %s", pattern, err, out)
	}
	return kept
}

// resolved is each variable's options and the value the test picks: the
// one option, or all of them, as Grafana writes several values for
// Graphite ({a,b}).
type resolved struct {
	options map[string][]string
	value   map[string]string
}

// interpolate writes the variables' values into a query.
func (r resolved) interpolate(query string) string {
	// Longest names first: $prefix before a shorter $p, were there one.
	names := make([]string, 0, len(r.value))
	for n := range r.value {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return len(b) - len(a) })
	for _, n := range names {
		query = strings.ReplaceAll(query, "${"+n+"}", r.value[n])
		query = strings.ReplaceAll(query, "$"+n, r.value[n])
	}
	return query
}

func resolveVariables(ctx context.Context, t *testing.T, g *testbed.GraphiteWeb, js regexEngine, set map[string]string) resolved {
	t.Helper()
	r := resolved{options: map[string][]string{}, value: map[string]string{}}
	for _, v := range Variables {
		switch v.Type {
		case "datasource":
			continue
		case "textbox", "custom":
			r.value[v.Name] = set[v.Name]
			continue
		}
		query := r.interpolate(v.Query)
		var names []string
		if inner, ok := strings.CutPrefix(query, "expand("); ok {
			paths, err := g.Expand(ctx, strings.TrimSuffix(inner, ")"))
			if err != nil {
				t.Fatalf("variable %s: %v", v.Name, err)
			}
			names = paths
		} else {
			found, err := g.Find(ctx, query)
			if err != nil {
				t.Fatalf("variable %s: %v", v.Name, err)
			}
			for _, f := range found {
				names = append(names, f.Text)
			}
		}
		if v.Regex != "" {
			names = js.apply(t, v.Regex, names)
		}
		slices.Sort(names)
		names = slices.Compact(names)
		if len(names) == 0 {
			t.Fatalf("variable %s: query %q found nothing", v.Name, query)
		}
		r.options[v.Name] = names
		if pick, ok := set[v.Name]; ok {
			if !slices.Contains(names, pick) {
				t.Fatalf("variable %s: %q is not among %q", v.Name, pick, names)
			}
			r.value[v.Name] = pick
		} else if len(names) == 1 {
			r.value[v.Name] = names[0]
		} else {
			r.value[v.Name] = "{" + strings.Join(names, ",") + "}"
		}
	}
	return r
}

// checkOptions: each variable lists what the scenario has.
func checkOptions(t *testing.T, r resolved, host, web3 string) {
	t.Helper()
	want := map[string][]string{
		"host":     {host},
		"process":  {"1"},
		"frontend": {"db_tcp-1", "fe_acme", "fe_tls", "stats", "stats_auth", "www_example-fe"},
		"backend":  {"app_v1", "be_dns", "db_tcp-1", "stats", "stats_auth", "sticky"},
		"server":   {"pg_1", "srv1", "srv2", "web-1", "web-2", "web-4", "web-5", web3},
	}
	for name, w := range want {
		got := r.options[name]
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("variable %s lists %q, want %q", name, got, w)
		}
	}
}

// answer is what graphite-web returned for a panel's target.
type answer struct {
	panel, target string
	series        []testbed.Series
}

// askPanels renders every target of every panel over the last 10 minutes
// and fails t for each that returns no series with data, but the panels
// in without, which must return nothing.
func askPanels(ctx context.Context, t *testing.T, g *testbed.GraphiteWeb, r resolved, without []string) map[string][]answer {
	t.Helper()
	results := map[string][]answer{}
	asked := 0
	for _, row := range Rows {
		for _, p := range row.Panels {
			for _, target := range p.Targets {
				q := r.interpolate(target)
				series, err := g.Render(ctx, q, "-10min")
				if err != nil {
					t.Errorf("panel %q: %v", p.Title, err)
					continue
				}
				asked++
				withData := 0
				for _, s := range series {
					if len(s.Values()) > 0 {
						withData++
					}
				}
				switch {
				case slices.Contains(without, p.Title) && withData > 0:
					t.Errorf("panel %q: %s returned %d series with data, want none on these paths", p.Title, q, withData)
				case !slices.Contains(without, p.Title) && withData == 0:
					t.Errorf("panel %q: %s returned no series with data (%d series)", p.Title, q, len(series))
				}
				results[p.Title] = append(results[p.Title], answer{panel: p.Title, target: q, series: series})
			}
		}
	}
	t.Logf("%d targets asked of graphite-web", asked)
	return results
}

// checkNumbers: the panels show what the test did.
func checkNumbers(t *testing.T, results map[string][]answer, s sent, host string, master, during, certs bool) {
	t.Helper()
	names := func(title string) []string {
		var n []string
		for _, a := range results[title] {
			for _, s := range a.series {
				n = append(n, s.Target)
			}
		}
		slices.Sort(n)
		return n
	}
	last := func(title, name string) (float64, bool) {
		for _, a := range results[title] {
			for _, s := range a.series {
				if s.Target == name {
					return s.Last()
				}
			}
		}
		return 0, false
	}
	// ending is the series of the panel title for the file name, as
	// aliasByNode names it: host.-dir-name_pem.
	ending := func(title, name string) string {
		for _, n := range names(title) {
			if strings.HasSuffix(n, "-"+strings.ReplaceAll(name, ".", "_")) {
				return n
			}
		}
		return ""
	}
	down := names("Servers DOWN now")
	want := []string{host + ".app_v1." + s.down + ".DOWN", host + ".app_v1.web-2.DOWN"}
	if !slices.Equal(down, want) {
		t.Errorf("Servers DOWN now shows %q, want %q", down, want)
	}
	if v, ok := last("Server state: DOWN", host+".app_v1.web-5.DOWN"); !ok || v != 0 {
		t.Errorf("Server state: DOWN of web-5 (no check) = %v (%v), want 0", v, ok)
	}
	// The 5xx rate over the run: perSecond's points, summed, times their
	// step of 1 s, are the 503s sent, but those of the first gather's
	// second and of the second in which the reload reset the counters.
	for _, a := range results["HTTP 5xx per second"] {
		if !during {
			break
		}
		for _, series := range a.series {
			if !strings.HasPrefix(series.Target, host+".www_example-fe.") && !strings.HasPrefix(series.Target, host+".app_v1.") {
				continue
			}
			total := 0.0
			for _, v := range series.Values() {
				total += v
			}
			// The first gather's count has no rate before it.
			if total > float64(s.allErrors) || total < float64(s.allErrors)*2/3-2 {
				t.Errorf("HTTP 5xx per second, %s: %.0f in all over the run, want about the %d sent", series.Target, total, s.allErrors)
			}
		}
	}
	if certs {
		// The stat's one series, whatever graphite-web names it.
		if n := names("Certificates expiring within 14 days"); len(n) != 1 {
			t.Errorf("Certificates expiring within 14 days: series %q, want one", n)
		} else if v, ok := last("Certificates expiring within 14 days", n[0]); !ok || v != 2 {
			t.Errorf("Certificates expiring within 14 days = %v (%v), want 2 (soon.pem, expired.pem)", v, ok)
		}
		for name, days := range certDays {
			file := strings.NewReplacer("/", "-", ".", "_").Replace(certPaths[name])
			if v, ok := last("Days left per certificate", host+"."+file); !ok || math.Abs(v-float64(days)) > 0.1 {
				t.Errorf("Days left per certificate of %s = %v (%v), want %d; series %q", name, v, ok, days, names("Days left per certificate"))
			}
		}
	}
	if certs { // and HAProxy's renewals
		// refused.pem is overdue at once; retrying.pem too once HAProxy
		// gives up, about two minutes after its start.
		overdue := 0
		for _, n := range names("Days until each ACME renewal") {
			if v, ok := last("Days until each ACME renewal", n); ok && v < 0 {
				overdue++
			}
		}
		if n := names("ACME renewals overdue"); len(n) != 1 {
			t.Errorf("ACME renewals overdue: series %q, want one", n)
		} else if v, ok := last("ACME renewals overdue", n[0]); !ok || v != float64(overdue) || overdue < 1 {
			t.Errorf("ACME renewals overdue = %v (%v), want the %d renewals whose date has passed (refused.pem at least)", v, ok, overdue)
		}
		days := map[string]func(float64) bool{
			"renewed.pem": func(d float64) bool { return d > 80 && d < 83 }, // 90 days, renewed a twelfth before
			"refused.pem": func(d float64) bool { return d < 0 },
		}
		for name, ok := range days {
			if v, got := last("Days until each ACME renewal", ending("Days until each ACME renewal", name)); !got || !ok(v) {
				t.Errorf("Days until each ACME renewal of %s = %v (%v); series %q", name, v, got, names("Days until each ACME renewal"))
			}
		}
		// A long-running process keeps details for 5 minutes, but asks a
		// certificate HAProxy renewed again at once.
		if v, ok := last("Days left per certificate", ending("Days left per certificate", "renewed.pem")); !ok || v < 89 || v > 90 {
			t.Errorf("Days left per certificate of renewed.pem = %v (%v), want Pebble's 90 days", v, ok)
		}
		if n := names("OCSP updates failing"); len(n) != 1 {
			t.Errorf("OCSP updates failing: series %q, want one", n)
		} else if v, ok := last("OCSP updates failing", n[0]); !ok || v != 1 {
			t.Errorf("OCSP updates failing = %v (%v), want 1 (stapled.pem)", v, ok)
		}
		if v := maxOf(results["OCSP update failures"], ending("OCSP update failures", "stapled.pem")); !(v > 0) {
			t.Errorf("OCSP update failures: at most %v in an interval, want the failed update; series %q", v, names("OCSP update failures"))
		}
	}
	if certs { // and the pair and the resolvers: read by the same ways
		if v, ok := last("Peers connected", host+".mypeers.pb"); !ok || v != 1 {
			t.Errorf("Peers connected of pb = %v (%v), want 1; series %q", v, ok, names("Peers connected"))
		}
		if v, ok := last("Replication backlog", host+".mypeers.pb"); !ok || v != 0 {
			t.Errorf("Replication backlog to pb = %v (%v), want 0", v, ok)
		}
		if v := maxOf(results["DNS answers and errors per second"], host+".dns.ns1.valid"); !(v > 0) {
			t.Errorf("DNS answers: valid per second at most %v, want some; series %q", v, names("DNS answers and errors per second"))
		}
	}
	if !master {
		return
	}
	if v, ok := last("Failed reloads", host); !ok || v != 1 {
		t.Errorf("Failed reloads = %v (%v), want 1", v, ok)
	}
	if v := maxOf(results["Workers and old workers"], host+".old_workers"); v != 1 {
		t.Errorf("Workers and old workers: old_workers at most %v, want 1 (the worker the session held)", v)
	}
	if v, ok := last("Workers and old workers", host+".old_workers"); !ok || v != 0 {
		t.Errorf("Workers and old workers: old_workers ends at %v (%v), want 0 (the session closed)", v, ok)
	}
	if v, ok := last("Reloads", host); !ok || v != 2 {
		t.Errorf("Reloads = %v (%v), want 2 (one good, one failed)", v, ok)
	}
	if v, ok := last("Stick table entries", host+".sticky"); !ok || v != 1 {
		t.Errorf("Stick table entries of sticky = %v (%v), want the 1 the test put", v, ok)
	}
	if v, ok := last("Stick tables, % full", host+".sticky"); !ok || v != 1 {
		t.Errorf("Stick tables, %% full of sticky = %v (%v), want 1 (1 of 100)", v, ok)
	}
}

// maxOf is the highest value of the series named name among answers.
func maxOf(answers []answer, name string) float64 {
	m := math.Inf(-1)
	for _, a := range answers {
		for _, s := range a.series {
			if s.Target == name {
				for _, v := range s.Values() {
					m = max(m, v)
				}
			}
		}
	}
	return m
}

// Pictures are the panels docs/dashboard.md shows, rendered by
// graphite-web's render API from the test's run.
var Pictures = []struct{ File, Panel string }{
	{"requests.png", "Requests per second"},
	{"responses.png", "HTTP responses by class"},
	{"servers.png", "Servers by state"},
	{"down.png", "Server state: DOWN"},
	{"reloads.png", "Workers and old workers"},
	{"certificates.png", "Days left per certificate"},
	{"renewals.png", "Days until each ACME renewal"},
}

func writePictures(ctx context.Context, t *testing.T, g *testbed.GraphiteWeb, r resolved, start time.Time, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	from := fmt.Sprint(start.Add(-5 * time.Second).Unix())
	for _, pic := range Pictures {
		p, ok := panel(pic.Panel)
		if !ok {
			t.Fatalf("picture %s: no panel %q", pic.File, pic.Panel)
		}
		var targets []string
		for _, target := range p.Targets {
			targets = append(targets, r.interpolate(target))
		}
		opts := url.Values{
			"title": {p.Title}, "from": {from}, "until": {"now"}, "width": {"800"}, "height": {"300"},
			"bgcolor": {"FFFFFF"}, "fgcolor": {"222222"}, "majorGridLineColor": {"CCCCCC"}, "minorGridLineColor": {"EEEEEE"},
			"fontSize": {"11"}, "lineWidth": {"2"}, "hideLegend": {"false"},
		}
		if p.Stack {
			opts.Set("areaMode", "stacked")
		}
		png, err := g.RenderPNG(ctx, targets, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, pic.File), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes): %s", filepath.Join(dir, pic.File), len(png), p.Title)
	}
}

func panel(title string) (Panel, bool) {
	for _, r := range Rows {
		for _, p := range r.Panels {
			if p.Title == title {
				return p, true
			}
		}
	}
	return Panel{}, false
}
