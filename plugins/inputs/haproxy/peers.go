package haproxy

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// "show peers" (level user) is HAProxy's debugging dump of its peers
// sections: a section's line, then each peer's, then that peer's lines
// (its session, its shared tables), as key=value tokens whose set changes
// between releases (3.0 and later add app_state and learn_state; 2.2 has no
// last_hdshk):
//
//	0x...: [08/Dec/2026:00:25:39] id=mypeers disabled=0 flags=0x6811 ...
//	  0x...: id=pb(remote,active) addr=127.0.0.1:17002 last_status=ESTA last_hdshk=0s
//	        reconnect=3s heartbeat=2s confirm=0 tx_hbt=0 rx_hbt=0 no_hbt=0 new_conn=1 proto_err=0 coll=1
//	        flags=0x20000200 appctx:0x7fca300426a0 st0=7 st1=0 task_calls=5 state=EST
//	        shared tables:
//	          0x... local_id=1 remote_id=1 flags=0x0 remote_data=0x4
//	              last_acked=0 last_pushed=1 last_get=0 teaching_origin=0 update=0
//	              table:0x... id=mypeers/t1 update=1 localupdate=1 commitupdate=1 refcnt=1
//
// Each peer gives one haproxy_peer metric: connected (1 while its session
// is established: state=EST; remote peers only, as backlog), the counters
// the release gives, the seconds
// since the last handshake, app_state and learn_state (3.0+), and backlog:
// the updates made locally that have not been pushed to it, over its
// shared tables (localupdate - last_pushed, as HAProxy's 32-bit counters
// wrap).

// maxPeersLines bounds the lines of one "show peers" answer.
const maxPeersLines = 1000000

// peerCounters are the peer's counters read as int64 fields.
var peerCounters = []string{"tx_hbt", "rx_hbt", "no_hbt", "new_conn", "proto_err", "coll"}

// readPeers reads "show peers" and emits a haproxy_peer metric per peer.
func (g *serverGather) readPeers(lr *lineReader, processNum string) error {
	var section string
	var cur *peerState
	var errs badRows
	errs.noun = "bad peers"
	flush := func() {
		if cur != nil {
			cur.emit(g, processNum, section)
		}
		cur = nil
	}
	err := readAnswerLines(lr, maxPeersLines, func(n int, line []byte) {
		trimmed := bytes.TrimLeft(line, " ")
		indent := len(line) - len(trimmed)
		kv := tokens(trimmed)
		switch {
		case indent == 0 && kv["id"] != "":
			flush()
			section = kv["id"]
		case indent == 2 && kv["id"] != "":
			flush()
			name, role, _ := strings.Cut(kv["id"], "(")
			role, _, _ = strings.Cut(role, ",")
			cur = &peerState{name: name, role: role, kv: kv}
		case cur != nil:
			cur.more(kv, &errs, n)
		}
	})
	flush()
	if err != nil {
		errs.add(err)
	}
	return errs.err()
}

// tokens reads a line's key=value tokens ("appctx:0x..." and words
// without "=" are left out).
func tokens(line []byte) map[string]string {
	kv := map[string]string{}
	for _, f := range bytes.Fields(line) {
		if k, v, ok := bytes.Cut(f, []byte("=")); ok {
			kv[string(k)] = string(v)
		}
	}
	return kv
}

// peerState is what is read of one peer.
type peerState struct {
	name, role string
	kv         map[string]string // every token of its lines but its tables'
	connected  bool
	backlog    int64
	lastPushed string // of the shared table being read
	hasBacklog bool
}

// more reads one of the peer's lines after its first.
func (p *peerState) more(kv map[string]string, errs *badRows, n int) {
	if lp, ok := kv["last_pushed"]; ok {
		p.lastPushed = lp
		return
	}
	if lu, ok := kv["localupdate"]; ok && p.lastPushed != "" {
		local, ok1 := parseUint([]byte(lu))
		pushed, ok2 := parseUint([]byte(p.lastPushed))
		p.lastPushed = ""
		if !ok1 || !ok2 {
			errs.add(fmt.Errorf("line %d: localupdate %q or last_pushed is not a count", n, lu))
			return
		}
		// 32-bit counters: what is behind, modulo 2^32; "ahead" is none.
		if d := uint32(local) - uint32(pushed); d < 1<<31 { //nolint:gosec // HAProxy's counters are 32 bits
			p.backlog += int64(d)
		}
		p.hasBacklog = true
		return
	}
	if kv["state"] == "EST" {
		p.connected = true
	}
	for k, v := range kv {
		if _, seen := p.kv[k]; !seen {
			p.kv[k] = v
		}
	}
}

// emit emits the peer's haproxy_peer metric.
func (p *peerState) emit(g *serverGather, processNum, section string) {
	tags := map[string]string{"peers": section, "peer": p.name, "role": p.role}
	if a := p.kv["addr"]; a != "" {
		tags["addr"] = a
	}
	m := g.newMetric("haproxy_peer", tags, processNum)
	// The local peer is this HAProxy: no session to it, nothing pushed.
	remote := p.role != "local"
	if remote {
		connected := int64(0)
		if p.connected {
			connected = 1
		}
		m.add("connected", connected)
	}
	for _, c := range peerCounters {
		if v, ok := parseInt([]byte(p.kv[c])); ok {
			m.add(c, v)
		}
	}
	if d, ok := parseHAProxyDuration(p.kv["last_hdshk"]); ok {
		m.add("last_handshake", int64(d.Seconds()))
	}
	if remote && p.hasBacklog {
		m.add("backlog", p.backlog)
	}
	for _, s := range []string{"app_state", "learn_state", "last_status"} {
		if v := p.kv[s]; v != "" {
			m.add(s, v)
		}
	}
	m.emit()
}

// parseHAProxyDuration reads HAProxy's human durations: "0s", "2s",
// "1m3s", "2h10m", "3d4h", "250ms"; "<NEVER>" and "" are not one.
func parseHAProxyDuration(s string) (time.Duration, bool) {
	if s == "" || s[0] == '<' {
		return 0, false
	}
	var total time.Duration
	if days, rest, ok := strings.Cut(s, "d"); ok {
		n, ok := parseInt([]byte(days))
		if !ok {
			return 0, false
		}
		total, s = time.Duration(n)*24*time.Hour, rest
		if s == "" {
			return total, true
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, false
	}
	return total + d, true
}
