package haproxy

import (
	"slices"
	"strings"
	"testing"

	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
)

// resolverCounters are the counters show resolvers gives each nameserver
// on every release of the live matrix.
var resolverCounters = []string{"sent", "snd_error", "valid", "update", "cname", "cname_error", "any_err", "nx",
	"timeout", "refused", "other", "invalid", "too_big", "truncated", "outdated"}

// TestResolverRecordings reads each release's show resolvers: a
// haproxy_resolver for the nameserver that was asked something, every
// counter an int64, with the valid answers it had.
func TestResolverRecordings(t *testing.T) {
	for _, f := range releaseFacts {
		t.Run(f.version, func(t *testing.T) {
			answer := string(readTestdata(t, "haproxy-"+f.version+resolversSuffix))
			acc := &shim.Accumulator{}
			g := &serverGather{h: newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), ep: endpoint{tag: testSocketTag, name: testSocketTag}, acc: acc}
			if err := g.readOptional(showResolvers, newLineReader(strings.NewReader(answer)), "1"); err != nil {
				t.Fatal(err)
			}
			ms, _ := acc.Drain()
			// ns1, the test's; not the default section's nameserver, which
			// 2.6 and later make from /etc/resolv.conf and nothing asked.
			ns1 := find(ms, "haproxy_resolver", map[string]string{"resolvers": "dns", "nameserver": "ns1", "process_num": "1"})
			if ns1 == nil || len(ms) != 1 {
				t.Fatalf("%d metrics, ns1 %v; want ns1's alone", len(ms), ns1)
			}
			for _, m := range ms {
				var names []string
				for _, fl := range m.FieldList() {
					names = append(names, fl.Key)
					if _, ok := fl.Value.(int64); !ok {
						t.Errorf("%s is %T", fl.Key, fl.Value)
					}
				}
				if !slices.Equal(names, resolverCounters) {
					t.Errorf("fields %q, want %q", names, resolverCounters)
				}
			}
			if v, _ := ns1.GetField("valid"); v.(int64) < 1 {
				t.Errorf("ns1 valid = %v, want the answers it had", v)
			}
		})
	}
}

// TestResolverFaults: lines out of show resolvers' layout are reported
// with their number; the nameservers around them are still read.
func TestResolverFaults(t *testing.T) {
	answer := " nameserver early:\n  sent: 1\nResolvers section dns\n nameserver ns1:\n  sent: 3\n  valid: x\ngarbage\n nameserver ns2:\n  sent: 4\n\n"
	acc := &shim.Accumulator{}
	g := &serverGather{h: newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), ep: endpoint{tag: testSocketTag}, acc: acc}
	err := g.readResolvers(newLineReader(strings.NewReader(answer)), "")
	ms, _ := acc.Drain()
	if len(ms) != 2 || ms[0].Fields()["sent"] != int64(3) || ms[1].Fields()["sent"] != int64(4) {
		t.Errorf("metrics %v, want ns1 and ns2 with their sent", ms)
	}
	if err == nil || !strings.Contains(err.Error(), "line 1 left out: a nameserver before any resolvers section") || !strings.Contains(err.Error(), "and 3 more bad lines") {
		t.Errorf("err = %v", err)
	}
}

// TestNoResolvers: 2.2 without a resolvers section answers so; it is no
// error and gives nothing.
func TestNoResolvers(t *testing.T) {
	acc := &shim.Accumulator{}
	g := &serverGather{h: newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), ep: endpoint{tag: testSocketTag}, acc: acc}
	if err := g.readResolvers(newLineReader(strings.NewReader("No resolvers found\n\n")), ""); err != nil {
		t.Error(err)
	}
	if ms, _ := acc.Drain(); len(ms) != 0 {
		t.Errorf("%d metrics", len(ms))
	}
}
