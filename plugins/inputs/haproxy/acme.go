package haproxy

import (
	"fmt"
	"strings"
	"time"
)

// HAProxy 3.2 and later renew certificates themselves (an "acme" section,
// a crt-store's "load crt ... acme NAME"), and "acme status" (level
// admin) says, one tab-separated row per certificate, where each renewal
// stands:
//
//	# certificate	section	state	expiration date (UTC)	expires in	scheduled date (UTC)	scheduled in
//	/etc/haproxy/site.pem	le	Scheduled	2027-01-07T01:18:48Z	29d 23h59m07s	2027-01-04T13:18:48Z	27d 11h59m07s
//
// state is Scheduled, Running (a renewal under way: no scheduled date),
// or Stopped (the scheduler is off). A renewal that failed is Scheduled
// again, with its date passed ("scheduled in" says 0d 0h00m00s). Each
// row gives one haproxy_acme metric: the state as one 0/1 field per
// state (as status.<STATE> for servers), the seconds until the
// certificate's expiry and until the scheduled renewal, from the dates,
// so negative once overdue. The command takes HAProxy's lock on the
// certificates, and answers nothing at all while another operation holds
// it (certlock.go).

// ACMEStates are the states of "acme status", as the state.<STATE>
// fields name them; OTHER is a state this list lacks.
var ACMEStates = []string{"SCHEDULED", "RUNNING", "STOPPED", "OTHER"}

// maxACMELines bounds the rows of one "acme status" answer.
const maxACMELines = 200000

// readACMEStatus reads "acme status" and emits a haproxy_acme metric per
// row. A row it cannot read is reported and left out.
func (g *serverGather) readACMEStatus(lr *lineReader, processNum string) error {
	bad := badRows{noun: "bad lines"}
	err := readAnswerLines(lr, maxACMELines, func(n int, line []byte) {
		if len(line) > 0 && line[0] == '#' {
			return
		}
		if err := g.addACME(string(line), processNum); err != nil {
			bad.add(fmt.Errorf("line %d left out: %w: %q", n, err, clip(line, 200)))
		}
	})
	if err != nil {
		bad.add(err)
	}
	return bad.err()
}

// addACME emits the haproxy_acme metric of one row.
func (g *serverGather) addACME(row, processNum string) error {
	cols := strings.Split(row, "\t")
	if len(cols) < 6 || cols[0] == "" {
		return fmt.Errorf("%d columns, want the 7 of acme status", len(cols))
	}
	expires, err := time.Parse(time.RFC3339, cols[3])
	if err != nil {
		return fmt.Errorf("expiration date %q is not a date", cols[3])
	}
	var scheduled time.Time
	if cols[5] != "-" {
		if scheduled, err = time.Parse(time.RFC3339, cols[5]); err != nil {
			return fmt.Errorf("scheduled date %q is not a date", cols[5])
		}
	}
	if g.certs.acmeNotAfter == nil {
		g.certs.acmeNotAfter = make(map[string]time.Time)
	}
	g.certs.acmeNotAfter[cols[0]] = expires
	m := g.newMetric("haproxy_acme", map[string]string{"file": cols[0], "section": cols[1]}, processNum)
	state := strings.ToUpper(cols[2])
	known := false
	for _, s := range ACMEStates[:len(ACMEStates)-1] {
		known = known || s == state
	}
	for _, s := range ACMEStates {
		v := int64(0)
		if s == state || s == "OTHER" && !known {
			v = 1
		}
		m.add("state."+s, v)
	}
	m.add("expiry", int64(expires.Sub(g.ts).Seconds()))
	if !scheduled.IsZero() {
		m.add("scheduled_in", int64(scheduled.Sub(g.ts).Seconds()))
	}
	m.emit()
	return nil
}
