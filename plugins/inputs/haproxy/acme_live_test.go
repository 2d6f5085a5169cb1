package haproxy

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// acmeSuffix names a release's recording of "acme status" on the test's
// certificate (a usage text before 3.2).
const acmeSuffix = "-acme.txt"

// TestACMEAsHAProxyRenews: an HAProxy that renews a certificate itself
// (an acme section, 3.2 and later) says so in haproxy_acme: the renewal
// scheduled, with the seconds until the certificate's expiry and until
// the renewal; then, a renewal asked for, running. The ACME server is
// not reachable here: what is tested is HAProxy's scheduler as HAProxy
// reports it. A release without ACME gives no haproxy_acme and no error.
func TestACMEAsHAProxyRenews(t *testing.T) {
	if testing.Short() {
		t.Skip("needs HAProxy (apt-get install haproxy, or ./scripts/test)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pki := testbed.NewPKI(t)
	dir := testbed.ShortTempDir(t)
	path := filepath.Join(dir, "a.pem")
	cert, err := pki.WriteServedCert(path, testbed.CertSpec{CommonName: "a.example.org", DNSNames: []string{"a.example.org"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	bin, err := testbed.HAProxyBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := testbed.HAProxyVersionOf(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	renews := releaseAtLeast(t, v, 3, 2)
	extra, global := fmt.Sprintf("frontend fe_acme\n\tbind unix@%s ssl crt %s\n\tdefault_backend be_none\n\nbackend be_none\n", filepath.Join(dir, "fe.sock"), path), ""
	if renews {
		global = "expose-experimental-directives\nhttpclient.resolvers.disabled on"
		extra = fmt.Sprintf(`acme test
	directory https://%s/dir
	contact test@example.org
	challenge HTTP-01
	map virt@acme

crt-store
	load crt %s acme test domains a.example.org

frontend fe_challenge
	bind unix@%s
	http-request return status 200 content-type text/plain lf-string "%%[path,field(-1,/)].%%[path,field(-1,/),map(virt@acme)]" if { path_beg '/.well-known/acme-challenge/' }

`, testbed.ClosedAddr(t), path, filepath.Join(dir, "http.sock")) + extra
	}
	hp := testbed.NewHAProxy(t, testbed.HAProxyOptions{Global: global, Extra: extra})
	h := newPlugin(t, &HAProxy{Servers: []string{hp.AdminSocket}})
	if !renews {
		recordAnswer(ctx, t, hp, "acme status", acmeSuffix, firstLine)
		ms, errs := gather(t, h)
		if len(errs) > 0 || find(ms, "haproxy_acme", nil) != nil {
			t.Errorf("HAProxy %s: errors %v, haproxy_acme %v; want neither", v, errs, find(ms, "haproxy_acme", nil))
		}
		return
	}
	tags := map[string]string{"file": path, "section": "test", "process_num": "1"}
	sched := waitFields(ctx, t, h, "haproxy_acme", tags, "a renewal scheduled", func(f map[string]any) bool { return f["state.SCHEDULED"] == int64(1) })
	recordAnswer(ctx, t, hp, "acme status", acmeSuffix, answerShape)
	m, _ := gather(t, h)
	ts := find(m, "haproxy_acme", tags).Time()
	if e, _ := sched["expiry"].(int64); e < cert.NotAfter.Unix()-ts.Unix()-5 || e > cert.NotAfter.Unix()-ts.Unix()+5 {
		t.Errorf("expiry = %v, want the certificate's %d seconds left", sched["expiry"], cert.NotAfter.Unix()-ts.Unix())
	}
	if s, _ := sched["scheduled_in"].(int64); s <= 0 || s > 30*24*3600 {
		t.Errorf("scheduled_in = %v, want seconds before the expiry", sched["scheduled_in"])
	}
	for _, s := range []string{"RUNNING", "STOPPED", "OTHER"} {
		if sched["state."+s] != int64(0) {
			t.Errorf("state.%s = %v while scheduled", s, sched["state."+s])
		}
	}
	if out, err := hp.Command(ctx, "acme renew "+path); err != nil || strings.Contains(out, "rror") {
		t.Fatalf("acme renew: %q %v", out, err)
	}
	running := waitFields(ctx, t, h, "haproxy_acme", tags, "a renewal running", func(f map[string]any) bool { return f["state.RUNNING"] == int64(1) })
	if _, ok := running["scheduled_in"]; ok || running["state.SCHEDULED"] != int64(0) {
		t.Errorf("while running: %v, want no scheduled renewal", running)
	}
}
