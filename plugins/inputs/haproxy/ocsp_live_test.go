package haproxy

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// TestOCSPUpdatesAsHAProxyRunsThem: HAProxy (3.0 and later here: a
// crt-store with "ocsp-update on") asks a real OCSP responder, Debian's
// openssl ocsp, for its certificate's response; haproxy_ocsp counts the
// success, then a failure while the responder is stopped, then a success
// again. A release without show ssl ocsp-updates gives no haproxy_ocsp and
// no error.
func TestOCSPUpdatesAsHAProxyRunsThem(t *testing.T) {
	if testing.Short() {
		t.Skip("needs HAProxy (apt-get install haproxy, or ./scripts/test)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pki := testbed.NewPKI(t)
	resp := testbed.NewOCSPResponder(t, pki)
	dir := testbed.ShortTempDir(t) // the frontends bind unix sockets here
	path := filepath.Join(dir, "o.pem")
	cert, err := pki.WriteServedCert(path, testbed.CertSpec{CommonName: "o.example.org", DNSNames: []string{"o.example.org"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour), OCSPServer: resp.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Add(cert); err != nil {
		t.Fatal(err)
	}
	if err := resp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	version, err := testbed.HAProxyBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := testbed.HAProxyVersionOf(ctx, version)
	if err != nil {
		t.Fatal(err)
	}
	updates := releaseAtLeast(t, v, 3, 0)
	extra := fmt.Sprintf("frontend fe_ocsp\n\tbind unix@%s ssl crt %s\n\tdefault_backend be_none\n\nbackend be_none\n", filepath.Join(dir, "fe.sock"), path)
	if updates {
		extra = fmt.Sprintf("crt-store\n\tload crt %s ocsp-update on\n\n", path) + extra
	}
	hp := testbed.NewHAProxy(t, testbed.HAProxyOptions{Extra: extra})
	var logs testbed.SyncBuffer
	h := newPlugin(t, &HAProxy{Servers: []string{hp.AdminSocket}, Log: logger.New(logger.NewSink(&logs, telegraf.Debug), "inputs.haproxy")})

	ocsp := func(what string, cond func(f map[string]any) bool) map[string]any {
		t.Helper()
		return waitFields(ctx, t, h, "haproxy_ocsp", map[string]string{"file": path}, what, cond)
	}
	if !updates {
		recordAnswer(ctx, t, hp, "show ssl ocsp-updates", ocspSuffix, firstLine)
		ms, errs := gather(t, h)
		if len(errs) > 0 || find(ms, "haproxy_ocsp", nil) != nil {
			t.Errorf("HAProxy %s: errors %v, haproxy_ocsp %v; want neither", v, errs, find(ms, "haproxy_ocsp", nil))
		}
		return
	}
	ok := ocsp("the first update", func(f map[string]any) bool { return f["successes"] == int64(1) })
	recordAnswer(ctx, t, hp, "show ssl ocsp-updates", ocspSuffix, firstLine)
	if ok["failures"] != int64(0) || ok["last_update_status"] != int64(1) || ok["status"] != "Update successful" {
		t.Errorf("after a successful update: %v", ok)
	}
	if n, _ := ok["next_update"].(int64); n <= 0 || n > 24*3600 {
		t.Errorf("next_update = %v, want seconds to come", ok["next_update"])
	}
	if l, _ := ok["last_update"].(int64); l < 0 || l > 120 {
		t.Errorf("last_update = %v, want the seconds since a moment ago", ok["last_update"])
	}

	// The responder goes away; an update asked now fails.
	resp.Stop()
	if out, err := hp.Command(ctx, "update ssl ocsp-response "+path); err != nil {
		t.Fatalf("update ssl ocsp-response: %q %v", out, err)
	}
	failed := ocsp("a failed update", func(f map[string]any) bool { return f["failures"] == int64(1) })
	if failed["successes"] != int64(1) || failed["last_update_status"] == int64(1) || failed["status"] == "Update successful" {
		t.Errorf("after a failed update: %v", failed)
	}
	t.Logf("a failed update: %v", failed)

	// Back: the next update succeeds.
	if err := resp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := hp.Command(ctx, "update ssl ocsp-response "+path); err != nil {
		t.Fatalf("update ssl ocsp-response: %q %v", out, err)
	}
	ocsp("a success after the failure", func(f map[string]any) bool {
		return f["successes"] == int64(2) && f["failures"] == int64(1) && f["last_update_status"] == int64(1)
	})
}

// ocspSuffix names a release's recording of "show ssl ocsp-updates" on
// the test's certificate after its first update (a usage text before 2.8).
const ocspSuffix = "-ocsp.txt"
