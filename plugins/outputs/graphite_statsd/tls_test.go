package graphite_statsd

import (
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"testing"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// testPKI is the test bed's throwaway CA with a server certificate for
// 127.0.0.1 and a client certificate, written as PEM files.
type testPKI struct {
	caFile, clientCert, clientKey string
	server                        tls.Certificate
	pool                          *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := testbed.NewPKI(t)
	return &testPKI{caFile: p.CAFile, clientCert: p.ClientCert, clientKey: p.ClientKey, server: p.Server, pool: p.Pool}
}

// startTLSSink is a carbon behind TLS; with clientCA set it requires a
// client certificate signed by it.
func startTLSSink(t *testing.T, p *testPKI, clientCA *x509.CertPool) *testbed.GraphiteSink {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if clientCA != nil {
		cfg.ClientCAs = clientCA
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{TLS: cfg})
}

func TestTLSDelivery(t *testing.T) {
	p := newTestPKI(t)
	cases := []struct {
		name       string
		clientAuth bool
		opts       func(*GraphiteStatsd)
		delivered  bool
		logged     string // in the log when not delivered
	}{
		{"our CA", false, func(o *GraphiteStatsd) { o.TLSCA = p.caFile }, true, ""},
		{"client certificate", true, func(o *GraphiteStatsd) {
			o.TLSCA, o.TLSCert, o.TLSKey = p.caFile, p.clientCert, p.clientKey
		}, true, ""},
		{"insecure_skip_verify", false, func(o *GraphiteStatsd) { o.InsecureSkipVerify = true }, true, ""},
		{"system roots do not know the CA", false, func(o *GraphiteStatsd) { o.TLSEnable = true }, false, "certificate"},
		{"wrong server name", false, func(o *GraphiteStatsd) { o.TLSCA = p.caFile; o.TLSServerName = "carbon.example" }, false, "carbon.example"},
		// TLS 1.3 finishes the client's handshake before the server checks
		// its certificate: the refusal shows as an alert or a reset on the
		// first write, and the metrics are kept either way.
		{"client certificate missing", true, func(o *GraphiteStatsd) { o.TLSCA = p.caFile }, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var clientCA *x509.CertPool
			if c.clientAuth {
				clientCA = p.pool
			}
			s := startTLSSink(t, p, clientCA)
			o, logs := newOutput(t, []string{s.Addr}, c.opts)
			if err := o.Write(seqMetrics(0, 200, t0)); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if err := o.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if !c.delivered {
				if n := o.Undelivered(); n != 200 {
					t.Errorf("undelivered = %d, want all 200 reported", n)
				}
				if !strings.Contains(logs.String(), c.logged) || !strings.Contains(logs.String(), s.Addr) {
					t.Errorf("log does not name the server and %q:\n%s", c.logged, logs)
				}
				if got := s.Lines(); len(got) > 0 {
					t.Errorf("%d lines reached a server the client should not trust", len(got))
				}
				return
			}
			if n := o.Undelivered(); n != 0 {
				t.Errorf("undelivered = %d; log:\n%s", n, logs)
			}
			waitFor(t, "200 lines over TLS", func() bool { return len(s.Lines()) >= 200 })
			if got, want := s.Lines(), seqLines(0, 200, t0); !slices.Equal(got, want) {
				t.Errorf("got %d lines, want %d in order; first %q", len(got), len(want), got[:min(3, len(got))])
			}
		})
	}
}
