package haproxy

import (
	"context"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// acmeSuffix names a release's recording of "acme status" on the test's
// certificate (a usage text before 3.2).
const acmeSuffix = "-acme.txt"

// TestACMEAsHAProxyRenews: an HAProxy that renews certificates itself
// (an acme section, 3.2 and later) says so in haproxy_acme, against a
// real ACME server, Pebble, which HAProxy reaches by name through a DNS
// server of the test's and trusts through the test's CA. Two
// certificates are due for renewal at start (a day left of 30), so
// HAProxy's scheduler renews both at once:
//   - through Pebble, the renewal succeeds: haproxy_cert gives the new
//     certificate, issued by Pebble, 90 days left, and haproxy_acme the
//     next renewal scheduled;
//   - through a Pebble that is stopped, haproxy_acme says running while
//     HAProxy retries (3, 9, 27 and 81 seconds apart: about two
//     minutes), then scheduled again with the renewal's date passed (a
//     negative scheduled_in: overdue), and the certificate served is
//     still the old one, a day from expiry.
//
// A release without ACME gives no haproxy_acme and no error.
func TestACMEAsHAProxyRenews(t *testing.T) {
	if testing.Short() {
		t.Skip("needs HAProxy (apt-get install haproxy, or ./scripts/test)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	bin, err := testbed.HAProxyBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := testbed.HAProxyVersionOf(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	if !releaseAtLeast(t, v, 3, 2) {
		hp := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
		recordAnswer(ctx, t, hp, "acme status", acmeSuffix, firstLine)
		h := newPlugin(t, &HAProxy{Servers: []string{hp.AdminSocket}})
		ms, errs := gather(t, h)
		if len(errs) > 0 || find(ms, "haproxy_acme", nil) != nil {
			t.Errorf("HAProxy %s: errors %v, haproxy_acme %v; want neither", v, errs, find(ms, "haproxy_acme", nil))
		}
		return
	}
	// Renewals run while the test waits: let the others run meanwhile.
	t.Parallel()
	pki := testbed.NewPKI(t)
	dns := testbed.NewDNS(t, map[string]string{"acme.test": "127.0.0.1"})
	pebble := testbed.NewPebble(t, pki, "acme.test")
	stopped := testbed.NewPebble(t, pki, "acme.test")
	stopped.Stop()

	dir := testbed.ShortTempDir(t)
	due := func(name string) (string, *x509.Certificate) {
		path := filepath.Join(dir, name+".pem")
		cert, err := pki.WriteServedCert(path, testbed.CertSpec{CommonName: name + ".example.org", DNSNames: []string{name + ".example.org"},
			NotBefore: time.Now().Add(-29 * 24 * time.Hour), NotAfter: time.Now().Add(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return path, cert
	}
	renewed, _ := due("renewed")
	failing, old := due("failing")
	hp := testbed.NewHAProxy(t, testbed.HAProxyOptions{
		Global: "expose-experimental-directives\nhttpclient.resolvers.id acmedns\nhttpclient.resolvers.prefer ipv4\nhttpclient.ssl.ca-file " + pki.CAFile,
		Extra: fmt.Sprintf(`resolvers acmedns
	nameserver dns1 %s

acme pebble
	directory %s
	contact test@example.org
	challenge HTTP-01
	map virt@acme

acme down
	directory %s
	contact test@example.org
	challenge HTTP-01
	map virt@acme

crt-store
	load crt %s acme pebble domains renewed.example.org
	load crt %s acme down domains failing.example.org

frontend fe_acme
	bind unix@%s ssl crt %s crt %s
	http-request return status 200 content-type text/plain lf-string "%%[path,field(-1,/)].%%[path,field(-1,/),map(virt@acme)]" if { path_beg '/.well-known/acme-challenge/' }
`, dns.Addr, pebble.Directory, stopped.Directory, renewed, failing, filepath.Join(dir, "fe.sock"), renewed, failing)})
	h := newPlugin(t, &HAProxy{Servers: []string{hp.AdminSocket}})
	acmeTags := func(path, section string) map[string]string {
		return map[string]string{"file": path, "section": section, "process_num": "1"}
	}

	running := waitFields(ctx, t, h, "haproxy_acme", acmeTags(failing, "down"), "a renewal retrying", func(f map[string]any) bool { return f["state.RUNNING"] == int64(1) })
	if _, ok := running["scheduled_in"]; ok || running["state.SCHEDULED"] != int64(0) {
		t.Errorf("while running: %v, want no scheduled renewal", running)
	}

	issuer, err := pebble.Issuer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cert := waitMetric(ctx, t, h, "haproxy_cert", map[string]string{"file": renewed}, "the certificate Pebble issued",
		func(m telegraf.Metric) bool { return m.Tags()["issuer_common_name"] == issuer.Subject.CommonName }).Fields()
	if e, _ := cert["expiry"].(int64); e < 89*24*3600 || e > 90*24*3600 {
		t.Errorf("renewed: expiry %v, want Pebble's 90 days", cert["expiry"])
	}
	sched := waitFields(ctx, t, h, "haproxy_acme", acmeTags(renewed, "pebble"), "the next renewal scheduled", func(f map[string]any) bool { return f["state.SCHEDULED"] == int64(1) })
	// HAProxy renews when a twelfth of the validity is left.
	if e, s := sched["expiry"].(int64), sched["scheduled_in"].(int64); e < 89*24*3600 || s < e-e/12-60 || s > e-e/12+60 {
		t.Errorf("renewed: expiry %v, scheduled_in %v; want 90 days and a twelfth less", sched["expiry"], sched["scheduled_in"])
	}

	// The other renewal fails after HAProxy's retries, about 2 minutes.
	overdue := waitFields(ctx, t, h, "haproxy_acme", acmeTags(failing, "down"), "a failed renewal", func(f map[string]any) bool { return f["state.SCHEDULED"] == int64(1) })
	if s, _ := overdue["scheduled_in"].(int64); s >= 0 {
		t.Errorf("after a failed renewal: scheduled_in %v, want negative (overdue)", overdue["scheduled_in"])
	}
	if e, _ := overdue["expiry"].(int64); e <= 0 || e > 24*3600 {
		t.Errorf("after a failed renewal: expiry %v, want the old certificate's day", overdue["expiry"])
	}
	m, _ := gather(t, h)
	if c := find(m, "haproxy_cert", map[string]string{"file": failing}); c == nil || c.Tags()["serial_number"] != old.SerialNumber.Text(16) {
		t.Errorf("after a failed renewal: %v, want the old certificate (serial %x)", c, old.SerialNumber)
	}
	recordAnswer(ctx, t, hp, "acme status", acmeSuffix, answerShape)
}
