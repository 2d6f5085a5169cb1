package haproxy

import (
	"strings"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
)

// TestOCSPRecordings reads each release's answer to show ssl ocsp-updates
// as the optional command it is: from 3.0 here, one haproxy_ocsp metric
// of the test's certificate after its first update; before 2.8, a usage
// text, which is no error and gives nothing.
func TestOCSPRecordings(t *testing.T) {
	for _, f := range releaseFacts {
		t.Run(f.version, func(t *testing.T) {
			answer := string(readTestdata(t, "haproxy-"+f.version+ocspSuffix))
			acc := &shim.Accumulator{}
			g := &serverGather{h: newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), ep: endpoint{tag: testSocketTag, name: testSocketTag}, acc: acc}
			row := strings.Split(answer, "\n")[1]
			cols := strings.Split(row, " | ")
			if len(cols) == 8 {
				last, err := time.Parse(ocspTimeLayout, cols[3])
				if err != nil {
					t.Fatal(err)
				}
				g.ts = last.Add(10 * time.Second)
			}
			if err := g.readOptional(showOCSPUpdates, newLineReader(strings.NewReader(answer)), "1"); err != nil {
				t.Fatal(err)
			}
			ms, _ := acc.Drain()
			if f.version < "2.8" {
				if len(ms) != 0 || len(g.skips) != 1 || g.skips[0].why != lacks {
					t.Errorf("a release without it: %d metrics, skips %v; want none and the command lacked", len(ms), g.skips)
				}
				return
			}
			if len(ms) != 1 {
				t.Fatalf("%d metrics, want the one certificate's", len(ms))
			}
			fields, tags := ms[0].Fields(), ms[0].Tags()
			want := map[string]any{"successes": int64(1), "failures": int64(0), "last_update_status": int64(1),
				"status": "Update successful", "last_update": int64(10), "next_update": int64(3600 - 10)}
			for k, v := range want {
				if fields[k] != v {
					t.Errorf("%s = %v, want %v", k, fields[k], v)
				}
			}
			if !strings.HasSuffix(tags["file"], "/o.pem") || tags["process_num"] != "1" {
				t.Errorf("tags %v", tags)
			}
		})
	}
}

// TestOCSPFaults: rows out of show ssl ocsp-updates' layout are reported
// with their number; the rows around them are still read.
func TestOCSPFaults(t *testing.T) {
	head := "OCSP Certid | Path | Next Update | Last Update | Successes | Failures | Last Update Status | Last Update Status (str)\n"
	good := "30 | /a.pem | 08/Dec/2026:01:02:27 +0000 | - | 0 | 2 | 2 | HTTP error\n"
	answer := head + "30 | /b.pem | soon | - | 0 | 0 | 0 | Unknown\n" + good + "30 | /c.pem | 08/Dec/2026:01:02:27 +0000 | - | x | 0 | 0 | Unknown\nshort | row\n\n"
	acc := &shim.Accumulator{}
	g := &serverGather{h: newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), ep: endpoint{tag: testSocketTag}, acc: acc, ts: time.Unix(1796690000, 0)}
	err := g.readOCSPUpdates(newLineReader(strings.NewReader(answer)), "")
	ms, _ := acc.Drain()
	if len(ms) != 1 || ms[0].Fields()["failures"] != int64(2) {
		t.Errorf("metrics %v, want /a.pem's", ms)
	}
	if _, ok := ms[0].GetField("last_update"); ok {
		t.Error("last_update given before any update")
	}
	for _, want := range []string{`line 2 left out: next update "soon" is not a date`, "and 2 more bad lines"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to say %q", err, want)
		}
	}
}
