package haproxy

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// HAProxy 2.8 and later refresh the OCSP responses they staple themselves
// ("ocsp-update on"), and "show ssl ocsp-updates" (level admin) says how
// that goes, one row per certificate, columns separated by " | ":
//
//	OCSP Certid | Path | Next Update | Last Update | Successes | Failures | Last Update Status | Last Update Status (str)
//	304d...3f82 | /etc/haproxy/site.pem | 08/Dec/2026:01:02:27 +0000 | 08/Dec/2026:00:02:27 +0000 | 1 | 0 | 1 | Update successful
//
// Last Update is "-" before the first try. Each row gives one haproxy_ocsp
// metric: the counters, the seconds until the next update and since the
// last, and the last update's status, as HAProxy's number and its words.

// ocspTimeLayout is how the dates are printed.
const ocspTimeLayout = "02/Jan/2006:15:04:05 -0700"

// maxOCSPLines bounds the rows of one "show ssl ocsp-updates" answer.
const maxOCSPLines = 200000

// readOCSPUpdates reads "show ssl ocsp-updates" and emits a haproxy_ocsp
// metric per row. A row it cannot read is reported and left out.
func (g *serverGather) readOCSPUpdates(lr *lineReader, processNum string) error {
	bad := badRows{noun: "bad lines"}
	err := readAnswerLines(lr, maxOCSPLines, func(n int, line []byte) {
		if bytes.HasPrefix(line, []byte("OCSP Certid")) {
			return
		}
		if err := g.addOCSP(string(line), processNum); err != nil {
			bad.add(fmt.Errorf("line %d left out: %w: %q", n, err, clip(line, 200)))
		}
	})
	if err != nil {
		bad.add(err)
	}
	return bad.err()
}

// addOCSP emits the haproxy_ocsp metric of one row.
func (g *serverGather) addOCSP(row, processNum string) error {
	cols := strings.SplitN(row, " | ", 8)
	if len(cols) != 8 || cols[1] == "" {
		return fmt.Errorf("%d columns, want the 8 of show ssl ocsp-updates", len(cols))
	}
	next, err := time.Parse(ocspTimeLayout, cols[2])
	if err != nil {
		return fmt.Errorf("next update %q is not a date", cols[2])
	}
	var last time.Time
	if cols[3] != "-" {
		if last, err = time.Parse(ocspTimeLayout, cols[3]); err != nil {
			return fmt.Errorf("last update %q is not a date", cols[3])
		}
	}
	successes, ok1 := parseInt([]byte(cols[4]))
	failures, ok2 := parseInt([]byte(cols[5]))
	status, ok3 := parseInt([]byte(cols[6]))
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("successes %q, failures %q or status %q is not a number", cols[4], cols[5], cols[6])
	}
	m := g.newMetric("haproxy_ocsp", map[string]string{"file": cols[1]}, processNum)
	m.add("successes", successes)
	m.add("failures", failures)
	m.add("next_update", int64(next.Sub(g.ts).Seconds()))
	if !last.IsZero() {
		m.add("last_update", int64(g.ts.Sub(last).Seconds()))
	}
	m.add("last_update_status", status)
	m.add("status", strings.TrimSpace(cols[7]))
	m.emit()
	return nil
}
