package haproxy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// peersSuffix names a release's recording of "show peers" on the pair's
// first HAProxy once an entry was replicated.
const peersSuffix = "-peers.txt"

// TestPeersAsHAProxyReplicates: two HAProxy as an HA pair (pa and pb, one
// peers section, one shared table). haproxy_peer on pa says pb is
// connected and the backlog drained once an entry set on pa is in pb's
// table; with pb stopped, not connected and a backlog of the entries set
// meanwhile; with pb back, connected and drained again.
func TestPeersAsHAProxyReplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("needs HAProxy (apt-get install haproxy, or ./scripts/test)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The peers' ports, held for the test (HAProxy binds them all the same).
	pa, pb := testbed.ClosedAddr(t), testbed.ClosedAddr(t)
	section := fmt.Sprintf("peers mypeers\n\tpeer pa %s\n\tpeer pb %s\n\ttable t1 type ip size 1k expire 10m store gpc0\n", pa, pb)
	start := func(name string) *testbed.HAProxy {
		h, err := testbed.StartHAProxy(ctx, testbed.HAProxyOptions{Global: "localpeer " + name, Extra: section})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	a := start("pa")
	t.Cleanup(func() { _ = a.Close() })
	b := start("pb")
	h := newPlugin(t, &HAProxy{Servers: []string{a.UserSocket}})
	peer := map[string]string{"peers": "mypeers", "peer": "pb", "role": "remote", "addr": pb}
	until := func(what string, cond func(f map[string]any) bool) map[string]any {
		t.Helper()
		return waitFields(ctx, t, h, "haproxy_peer", peer, what, cond)
	}
	set := func(key string) {
		t.Helper()
		if out, err := a.Command(ctx, "set table mypeers/t1 key "+key+" data.gpc0 1"); err != nil || strings.TrimSpace(out) != "" {
			t.Fatalf("set table: %q %v", out, err)
		}
	}

	set("10.0.0.1")
	up := until("connected and drained", func(f map[string]any) bool { return f["connected"] == int64(1) && f["backlog"] == int64(0) })
	if out, err := b.Command(ctx, "show table mypeers/t1"); err != nil || !strings.Contains(out, "key=10.0.0.1 ") {
		t.Errorf("pb's table after the backlog drained: %q %v", out, err)
	}
	recordAnswer(ctx, t, a, "show peers", peersSuffix, peerKeys)

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	until("not connected once pb stopped", func(f map[string]any) bool { return f["connected"] == int64(0) })
	set("10.0.0.2")
	set("10.0.0.3")
	behind := until("a backlog of the entries set meanwhile", func(f map[string]any) bool { b, _ := f["backlog"].(int64); return b >= 2 })

	b = start("pb")
	t.Cleanup(func() { _ = b.Close() })
	back := until("connected and drained again", func(f map[string]any) bool { return f["connected"] == int64(1) && f["backlog"] == int64(0) })
	if out, err := b.Command(ctx, "show table mypeers/t1"); err != nil || !strings.Contains(out, "key=10.0.0.3 ") {
		t.Errorf("pb's table once back: %q %v", out, err)
	}
	t.Logf("up %v; pb stopped: %v; back: %v", up, behind, back)
}

// peerKeys is what stays of show peers from one run to the next: its
// keys, in order.
func peerKeys(answer string) string {
	var k []string
	for _, f := range strings.Fields(answer) {
		if key, _, ok := strings.Cut(f, "="); ok {
			k = append(k, key)
		}
	}
	return strings.Join(k, " ")
}
