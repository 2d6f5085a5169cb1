package haproxy

import (
	"strings"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
)

// TestPeerRecordings reads each release's show peers on the pair's first
// HAProxy, its entry replicated: pb remote and connected with no backlog,
// pa local and not connected; the counters the release gives, 3.0's
// states.
func TestPeerRecordings(t *testing.T) {
	for _, f := range releaseFacts {
		t.Run(f.version, func(t *testing.T) {
			answer := string(readTestdata(t, "haproxy-"+f.version+peersSuffix))
			acc := &shim.Accumulator{}
			g := &serverGather{h: newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), ep: endpoint{tag: testSocketTag, name: testSocketTag}, acc: acc, ts: time.Unix(1790000000, 0)}
			if err := g.readOptional(showPeers, newLineReader(strings.NewReader(answer)), "1"); err != nil {
				t.Fatal(err)
			}
			ms, _ := acc.Drain()
			if len(ms) != 2 {
				t.Fatalf("%d metrics, want pb's and pa's", len(ms))
			}
			pb := find(ms, "haproxy_peer", map[string]string{"peers": "mypeers", "peer": "pb", "role": "remote", "process_num": "1"})
			pa := find(ms, "haproxy_peer", map[string]string{"peers": "mypeers", "peer": "pa", "role": "local"})
			if pb == nil || pa == nil {
				t.Fatalf("metrics %v, want pb remote and pa local", ms)
			}
			for k, want := range map[string]any{"connected": int64(1), "backlog": int64(0), "new_conn": int64(1), "proto_err": int64(0), "last_status": "ESTA"} {
				if v, _ := pb.GetField(k); v != want {
					t.Errorf("pb %s = %v, want %v", k, v, want)
				}
			}
			if v, ok := pa.GetField("connected"); ok {
				t.Errorf("pa (local, this HAProxy) connected = %v, want none", v)
			}
			_, hasHandshake := pb.GetField("last_handshake")
			_, hasState := pb.GetField("app_state")
			if hasHandshake != (f.version >= "2.6") || hasState != (f.version >= "3.0") {
				t.Errorf("last_handshake given %v, app_state given %v on %s", hasHandshake, hasState, f.version)
			}
		})
	}
}

// TestPeerBacklogWraps: HAProxy's update counters are 32 bits: a local
// update past the wrap is ahead of a last push before it.
func TestPeerBacklogWraps(t *testing.T) {
	answer := "0x1: [x] id=s\n  0x2: id=p(remote,active) addr=1.2.3.4:5\n        state=EST\n        shared tables:\n" +
		"          0x3 local_id=1\n              last_acked=0 last_pushed=4294967290 last_get=0\n              table:0x4 id=s/t update=3 localupdate=3\n" +
		"          0x5 local_id=2\n              last_acked=0 last_pushed=10 last_get=0\n              table:0x6 id=s/u update=12 localupdate=12\n\n"
	acc := &shim.Accumulator{}
	g := &serverGather{h: newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), ep: endpoint{tag: testSocketTag}, acc: acc}
	if err := g.readPeers(newLineReader(strings.NewReader(answer)), ""); err != nil {
		t.Fatal(err)
	}
	ms, _ := acc.Drain()
	if len(ms) != 1 {
		t.Fatalf("%d metrics", len(ms))
	}
	// 3 - 4294967290 wraps to 9; 12 - 10 is 2.
	if v, _ := ms[0].GetField("backlog"); v != int64(11) {
		t.Errorf("backlog = %v, want 11", v)
	}
}

// TestHAProxyDurations: HAProxy's human durations, as last_hdshk prints
// them.
func TestHAProxyDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{"0s": 0, "2s": 2 * time.Second, "1m3s": 63 * time.Second, "2h10m": 130 * time.Minute,
		"3d4h": 76 * time.Hour, "250ms": 250 * time.Millisecond, "1d": 24 * time.Hour} {
		if got, ok := parseHAProxyDuration(in); !ok || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "<NEVER>", "x", "3dx"} {
		if _, ok := parseHAProxyDuration(in); ok {
			t.Errorf("%q read as a duration", in)
		}
	}
}

// TestPeerFaults: a table line whose counters are not counts is
// reported; the peer is still emitted with what could be read.
func TestPeerFaults(t *testing.T) {
	answer := "0x1: [x] id=s\n  0x2: id=p(remote,active) addr=1.2.3.4:5 new_conn=1\n        state=EST\n" +
		"              last_acked=0 last_pushed=x\n              table:0x4 id=s/t update=3 localupdate=3\n\n"
	acc := &shim.Accumulator{}
	g := &serverGather{h: newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), ep: endpoint{tag: testSocketTag}, acc: acc}
	err := g.readPeers(newLineReader(strings.NewReader(answer)), "")
	if err == nil || !strings.Contains(err.Error(), `line 5: localupdate "3" or last_pushed is not a count`) {
		t.Errorf("err = %v", err)
	}
	ms, _ := acc.Drain()
	if len(ms) != 1 || ms[0].Fields()["connected"] != int64(1) || ms[0].Fields()["new_conn"] != int64(1) {
		t.Fatalf("metrics %v", ms)
	}
	if _, ok := ms[0].GetField("backlog"); ok {
		t.Error("backlog given from counters that could not be read")
	}
}
