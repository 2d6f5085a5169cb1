package haproxy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// resolversSuffix names a release's recording of "show resolvers" on the
// test's resolvers section (dns, nameserver ns1) after a few resolutions.
const resolversSuffix = "-resolvers.txt"

// TestResolversAsHAProxyAsksThem: a server-template backend resolved
// through a real DNS server (dnsmasq): haproxy_resolver counts valid
// answers, then NXDOMAIN once the name is gone, then queries sent and
// none answered while the server is stopped, then valid answers again.
func TestResolversAsHAProxyAsksThem(t *testing.T) {
	if testing.Short() {
		t.Skip("needs HAProxy (apt-get install haproxy, or ./scripts/test)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dns := testbed.NewDNS(t, map[string]string{"app.test": "127.0.0.1"})
	hp := testbed.NewHAProxy(t, testbed.HAProxyOptions{Extra: fmt.Sprintf(`resolvers dns
	nameserver ns1 %s
	resolve_retries 1
	timeout resolve 500ms
	timeout retry 500ms
	hold valid 500ms
	hold nx 500ms
	hold timeout 500ms
	hold other 500ms

backend be_dns
	server-template srv 2 app.test:8080 resolvers dns init-addr none
`, dns.Addr)})
	h := newPlugin(t, &HAProxy{Servers: []string{hp.UserSocket}})
	ns := map[string]string{"resolvers": "dns", "nameserver": "ns1"}
	until := func(what string, cond func(f map[string]any) bool) map[string]any {
		t.Helper()
		return waitFields(ctx, t, h, "haproxy_resolver", ns, what, cond)
	}
	n := func(f map[string]any, k string) int64 { v, _ := f[k].(int64); return v }
	first := until("valid answers", func(f map[string]any) bool { return n(f, "valid") >= 1 && n(f, "sent") >= 1 })
	recordAnswer(ctx, t, hp, "show resolvers", resolversSuffix, answerShape)

	if err := dns.SetNames(nil); err != nil {
		t.Fatal(err)
	}
	gone := until("NXDOMAIN once the name is gone", func(f map[string]any) bool { return n(f, "nx") > n(first, "nx") })

	// A nameserver that does not answer: queries go on being sent and no
	// answer is counted (HAProxy 2.2 to 3.4 count no timeout per
	// nameserver for a server that is gone, measured here).
	dns.Stop()
	time.Sleep(time.Second) // what was under way ends
	stopped := until("queries sent to the stopped server", func(f map[string]any) bool { return true })
	down := until("queries sent to the stopped server", func(f map[string]any) bool { return n(f, "sent") >= n(stopped, "sent")+3 })
	for _, k := range []string{"valid", "nx", "refused", "other", "invalid"} {
		if n(down, k) != n(stopped, k) {
			t.Errorf("%s went from %d to %d while the server was stopped", k, n(stopped, k), n(down, k))
		}
	}
	t.Logf("valid %d, then nx %d, then sent %d to %d unanswered (timeout %d)", n(first, "valid"), n(gone, "nx"), n(stopped, "sent"), n(down, "sent"), n(down, "timeout"))

	if err := dns.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dns.SetNames(map[string]string{"app.test": "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	until("valid answers again", func(f map[string]any) bool { return n(f, "valid") > n(down, "valid") })
}
