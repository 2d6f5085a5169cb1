package haproxy

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// certBed is a real HAProxy serving three certificates the test made on
// two TLS frontends: a.pem and b.pem on fe_tls, c.pem (expired) on
// fe_tls2.
type certBed struct {
	hp    *testbed.HAProxy
	pki   *testbed.PKI
	files map[string]string // "a" -> its path
	certs map[string]*x509.Certificate
}

func newCertBed(t *testing.T) *certBed {
	t.Helper()
	now := time.Now()
	b := &certBed{pki: testbed.NewPKI(t), files: map[string]string{}, certs: map[string]*x509.Certificate{}}
	dir := testbed.ShortTempDir(t) // the frontends bind unix sockets here
	for name, spec := range map[string]testbed.CertSpec{
		"a": {CommonName: "a.example.org", DNSNames: []string{"a.example.org", "www.a.example.org"}, NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(30 * 24 * time.Hour)},
		"b": {CommonName: "b.example.org", DNSNames: []string{"b.example.org"}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(10 * 24 * time.Hour)},
		"c": {CommonName: "c.example.org", DNSNames: []string{"c.example.org"}, NotBefore: now.Add(-90 * 24 * time.Hour), NotAfter: now.Add(-time.Hour)},
	} {
		path := filepath.Join(dir, name+".pem")
		cert, err := b.pki.WriteServedCert(path, spec)
		if err != nil {
			t.Fatal(err)
		}
		b.files[name], b.certs[name] = path, cert
	}
	b.hp = testbed.NewHAProxy(t, testbed.HAProxyOptions{Extra: fmt.Sprintf(`frontend fe_tls
	bind unix@%s ssl crt %s crt %s
	default_backend be_none

frontend fe_tls2
	bind unix@%s ssl crt %s
	default_backend be_none

backend be_none
`, filepath.Join(dir, "fe1.sock"), b.files["a"], b.files["b"], filepath.Join(dir, "fe2.sock"), b.files["c"])})
	return b
}

// certsByFile gathers h once and returns its haproxy_cert metrics by
// file, failing on any error.
func certsByFile(t *testing.T, h *HAProxy) (map[string]telegraf.Metric, []telegraf.Metric) {
	t.Helper()
	ms, errs := gather(t, h)
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	out := map[string]telegraf.Metric{}
	for _, m := range ms {
		if m.Name() == "haproxy_cert" {
			f, _ := m.GetTag("file")
			if _, dup := out[f]; dup {
				t.Errorf("two haproxy_cert metrics for %s", f)
			}
			out[f] = m
		}
	}
	return out, ms
}

// checkCert checks one haproxy_cert metric against the certificate HAProxy
// was given.
func checkCert(t *testing.T, m telegraf.Metric, cert *x509.Certificate) {
	t.Helper()
	if m == nil {
		t.Errorf("no haproxy_cert metric for %s", cert.Subject.CommonName)
		return
	}
	ts := m.Time().Unix()
	for field, want := range map[string]int64{
		"enddate":   cert.NotAfter.Unix(),
		"startdate": cert.NotBefore.Unix(),
		"expiry":    cert.NotAfter.Unix() - ts,
		"age":       ts - cert.NotBefore.Unix(),
	} {
		got, ok := m.GetField(field)
		// expiry and age are of the gather's instant, within its second.
		if d, isInt := got.(int64); !ok || !isInt || d < want-1 || d > want+1 {
			t.Errorf("%s: %s = %v, want %d", cert.Subject.CommonName, field, got, want)
		}
	}
	for tag, want := range map[string]string{
		"common_name":        cert.Subject.CommonName,
		"issuer_common_name": "hap-monitor test CA",
		"serial_number":      cert.SerialNumber.Text(16),
		"san":                strings.Join(cert.DNSNames, ","),
		"status":             "used",
	} {
		if got, _ := m.GetTag(tag); got != want {
			t.Errorf("%s: tag %s = %q, want %q", cert.Subject.CommonName, tag, got, want)
		}
	}
}

// TestCertificatesAsHAProxyServesThem: what HAProxy holds in memory, not
// the files on disk: one haproxy_cert per certificate with x509_cert's
// fields (an expired one's expiry negative), a certificate replaced
// through the runtime API followed, a file renewed on disk without a
// reload not; from 3.2, the frontends serving each; each with a Graphite
// path under the default templates.
func TestCertificatesAsHAProxyServesThem(t *testing.T) {
	if testing.Short() {
		t.Skip("needs HAProxy (apt-get install haproxy, or ./scripts/test)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := newCertBed(t)
	h := newPlugin(t, &HAProxy{Servers: []string{b.hp.AdminSocket}})
	got, ms := certsByFile(t, h)
	if len(got) != 3 {
		t.Fatalf("%d haproxy_cert metrics, want 3: %v", len(got), got)
	}
	for name, path := range b.files {
		checkCert(t, got[path], b.certs[name])
	}
	if v, _ := got[b.files["c"]].GetField("expiry"); v.(int64) >= 0 {
		t.Errorf("the expired certificate's expiry is %v, want it negative", v)
	}
	// From 3.2, show ssl sni names the frontend and bind of each.
	if releaseAtLeast(t, b.hp.Version, 3, 2) {
		for name, fe := range map[string]string{"a": "fe_tls/", "b": "fe_tls/", "c": "fe_tls2/"} {
			if f, _ := got[b.files[name]].GetTag("frontends"); !strings.HasPrefix(f, fe) || strings.Contains(f, ",") {
				t.Errorf("%s: frontends %q, want its one bind of %s", name, f, fe)
			}
		}
	}
	paths := graphitePaths(t, ms)
	for name, path := range b.files {
		want := "p.lb1.1.haproxy_cert." + strings.ReplaceAll(strings.ReplaceAll(path, "/", "-"), ".", "_") + ".expiry"
		if !paths[want] {
			t.Errorf("%s: no Graphite path %s", name, want)
		}
	}

	// The runtime API replaces a.pem in memory: the metric follows; the
	// file on disk still holds the old certificate.
	renewed, pemData, err := b.pki.ServedCert(testbed.CertSpec{CommonName: "a.example.org", DNSNames: []string{"a.example.org"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(200 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := b.hp.Command(ctx, "set ssl cert "+b.files["a"]+" <<\n"+string(pemData)); err != nil || !strings.Contains(out, "Transaction created") && !strings.Contains(out, "Transaction updated") {
		t.Fatalf("set ssl cert: %q %v", out, err)
	}
	if out, err := b.hp.Command(ctx, "commit ssl cert "+b.files["a"]); err != nil || !strings.Contains(out, "Success!") {
		t.Fatalf("commit ssl cert: %q %v", out, err)
	}
	// b.pem is renewed on disk, and HAProxy not reloaded.
	if _, err := b.pki.WriteServedCert(b.files["b"], testbed.CertSpec{CommonName: "b.example.org", DNSNames: []string{"b.example.org"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(300 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	got, _ = certsByFile(t, h)
	checkCert(t, got[b.files["a"]], renewed)
	checkCert(t, got[b.files["b"]], b.certs["b"])
	onDisk, err := os.ReadFile(b.files["a"])
	if err != nil || strings.Contains(string(onDisk), string(pemData[:100])) {
		t.Errorf("a.pem on disk changed with the runtime API (%v)", err)
	}
}

// TestCertificatesAtLevelUser: a socket at level user refuses show ssl
// cert; it loses nothing else, says so once in an I! line, and is not
// asked again. With optional_measurements leaving haproxy_cert out, the
// certificates are not asked at all.
func TestCertificatesAtLevelUser(t *testing.T) {
	if testing.Short() {
		t.Skip("needs HAProxy (apt-get install haproxy, or ./scripts/test)")
	}
	b := newCertBed(t)
	var logs testbed.SyncBuffer
	user := newPlugin(t, &HAProxy{Servers: []string{b.hp.UserSocket}, Log: logger.New(logger.NewSink(&logs, telegraf.Debug), "inputs.haproxy")})
	admin := newPlugin(t, &HAProxy{Servers: []string{b.hp.AdminSocket}, OptionalMeasurements: []string{"haproxy_table"}})
	for i := range 2 {
		for _, h := range []*HAProxy{user, admin} {
			got, ms := certsByFile(t, h)
			if len(got) != 0 {
				t.Errorf("gather %d of %s: %d haproxy_cert metrics, want none", i+1, h.Servers[0], len(got))
			}
			if count(ms, "haproxy_info") != 1 || count(ms, "haproxy") < 12 {
				t.Errorf("gather %d of %s: %d haproxy_info and %d haproxy metrics", i+1, h.Servers[0], count(ms, "haproxy_info"), count(ms, "haproxy"))
			}
		}
	}
	say := "I! [inputs.haproxy] " + b.hp.UserSocket + ": show ssl cert needs a stats socket at level operator or above: this one refused it, so no haproxy_cert metrics (not asked again)"
	if n := strings.Count(logs.String(), say); n != 1 {
		t.Errorf("two gathers said %d times %q, want once:\n%s", n, say, logs.String())
	}
	if n := strings.Count(logs.String(), "E! "); n != 0 {
		t.Errorf("errors logged:\n%s", logs.String())
	}
}

// certsSuffix names a release's recording of the certificate commands on
// newCertBed: the answers to "show ssl cert;show ssl sni", then to "show
// ssl cert <file>" for each file listed, in the list's order.
const certsSuffix = "-certs.txt"

// TestLiveCertAnswersAsRecorded records (with -record) or checks a
// release's answers to the certificate commands: the same "Key:" lines
// in each file's details, the same show ssl sni header, or the same
// usage text where the release lacks it.
func TestLiveCertAnswersAsRecorded(t *testing.T) {
	if testing.Short() {
		t.Skip("needs HAProxy (apt-get install haproxy, or ./scripts/test)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := newCertBed(t)
	list, err := b.hp.Command(ctx, "show ssl cert;show ssl sni")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, l := range strings.Split(strings.SplitN(list, "\n\n", 2)[0], "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			files = append(files, "show ssl cert "+l)
		}
	}
	details, err := b.hp.Command(ctx, strings.Join(files, ";"))
	if err != nil {
		t.Fatal(err)
	}
	answer := list + details
	path := filepath.Join("testdata", "haproxy-"+recordingVersion(b.hp.Version)+certsSuffix)
	if *record {
		if err := os.WriteFile(path, []byte(answer), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded HAProxy %s's certificate answers into %s", b.hp.Version, path)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("HAProxy %s has no recording of its certificate answers: run this test with -record (%v)", b.hp.Version, err)
	}
	if g, w := answerShape(answer), answerShape(string(want)); g != w {
		t.Errorf("HAProxy %s's certificate answers differ from %s in shape:\n%s\nrecorded:\n%s", b.hp.Version, path, g, w)
	}
}

// answerShape is what stays of a certificate answer from one run to the
// next: the "Key:" of each line and the header and usage lines.
func answerShape(answer string) string {
	var out []string
	for _, l := range strings.Split(answer, "\n") {
		switch {
		case strings.HasPrefix(l, "#"), strings.HasPrefix(l, "Unknown command"), l == "":
			out = append(out, l)
		case strings.Contains(l, ": "):
			k, _, _ := strings.Cut(l, ": ")
			out = append(out, k+":")
		case strings.Contains(l, "\t"):
			out = append(out, fmt.Sprintf("(%d columns)", strings.Count(l, "\t")+1))
		default:
			out = append(out, "(a line)")
		}
	}
	return strings.Join(out, "\n")
}
