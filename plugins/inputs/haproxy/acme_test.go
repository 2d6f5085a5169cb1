package haproxy

import (
	"strings"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
)

// TestACMERecordings reads each release's acme status: from 3.2 the
// live test's two certificates, one renewed by Pebble and scheduled
// again, one whose renewal failed, overdue (its scheduled date passed: a
// negative scheduled_in), each one's seconds from the answer's dates;
// before 3.2, a usage text, which is no error and gives nothing.
func TestACMERecordings(t *testing.T) {
	for _, f := range releaseFacts {
		t.Run(f.version, func(t *testing.T) {
			answer := string(readTestdata(t, "haproxy-"+f.version+acmeSuffix))
			acc := &shim.Accumulator{}
			g := &serverGather{h: newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), ep: endpoint{tag: testSocketTag, name: testSocketTag}, acc: acc,
				ts: time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)}
			if err := g.readOptional(acmeStatus, newLineReader(strings.NewReader(answer)), "1"); err != nil {
				t.Fatal(err)
			}
			ms, _ := acc.Drain()
			if f.version < "3.2" {
				if len(ms) != 0 || len(g.skips) != 1 || g.skips[0].why != lacks {
					t.Errorf("a release without ACME: %d metrics, skips %v", len(ms), g.skips)
				}
				return
			}
			rows := strings.Split(strings.TrimSpace(answer), "\n")[1:]
			if len(ms) != 2 || len(rows) != 2 {
				t.Fatalf("%d metrics for %d rows, want the two certificates'", len(ms), len(rows))
			}
			for i, row := range rows {
				cols := strings.Split(row, "\t")
				exp, _ := time.Parse(time.RFC3339, cols[3])
				sched, _ := time.Parse(time.RFC3339, cols[5])
				want := map[string]any{"state.SCHEDULED": int64(1), "state.RUNNING": int64(0), "state.STOPPED": int64(0), "state.OTHER": int64(0),
					"expiry": exp.Unix() - g.ts.Unix(), "scheduled_in": sched.Unix() - g.ts.Unix()}
				for k, v := range want {
					if got := ms[i].Fields()[k]; got != v {
						t.Errorf("%s: %s = %v, want %v", cols[0], k, got, v)
					}
				}
				tags := ms[i].Tags()
				overdue := ms[i].Fields()["scheduled_in"].(int64) < 0
				switch {
				case strings.HasSuffix(tags["file"], "/failing.pem"):
					if tags["section"] != "down" || !overdue {
						t.Errorf("the failed renewal: tags %v, scheduled_in %v; want overdue", tags, ms[i].Fields()["scheduled_in"])
					}
				case strings.HasSuffix(tags["file"], "/renewed.pem"):
					if tags["section"] != "pebble" || overdue {
						t.Errorf("the renewed certificate: tags %v, scheduled_in %v", tags, ms[i].Fields()["scheduled_in"])
					}
				default:
					t.Errorf("tags %v", tags)
				}
			}
		})
	}
}

// TestACMEStates: a renewal running has no scheduled date; a state the
// vocabulary lacks is OTHER; a row cut short is reported.
func TestACMEStates(t *testing.T) {
	answer := "# certificate\tsection\tstate\texpiration date (UTC)\texpires in\tscheduled date (UTC)\tscheduled in\n" +
		"/a.pem\tle\tRunning\t2027-01-07T01:18:48Z\t29d\t-\t-\n" +
		"/b.pem\tle\tPaused\t2027-01-07T01:18:48Z\t29d\t2027-01-04T13:18:48Z\t27d\n" +
		"/c.pem\tle\n\n"
	acc := &shim.Accumulator{}
	g := &serverGather{h: newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), ep: endpoint{tag: testSocketTag}, acc: acc, ts: time.Unix(1790000000, 0)}
	err := g.readACMEStatus(newLineReader(strings.NewReader(answer)), "")
	if err == nil || !strings.Contains(err.Error(), "line 4 left out") {
		t.Errorf("err = %v, want the cut row reported", err)
	}
	ms, _ := acc.Drain()
	if len(ms) != 2 {
		t.Fatalf("%d metrics", len(ms))
	}
	if f := ms[0].Fields(); f["state.RUNNING"] != int64(1) || f["scheduled_in"] != nil {
		t.Errorf("running: %v", f)
	}
	if f := ms[1].Fields(); f["state.OTHER"] != int64(1) || f["state.SCHEDULED"] != int64(0) {
		t.Errorf("an unknown state: %v", f)
	}
}
