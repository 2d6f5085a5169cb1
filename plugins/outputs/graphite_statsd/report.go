package graphite_statsd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/influxdata/telegraf"
)

// failureReport says each delivery failure once, in one line naming the
// server, the cause and what to check. A failed try is not said at once:
// the next try, or Close's last one, says it, so that a run that ends
// right after (cron) says what became of the metrics in the same line and
// announces no retry that will not happen. The same failure again is at
// debug level; delivery that works again after failures is one I! line.
type failureReport struct {
	log telegraf.Logger

	pending string    // the last failure, not said yet: "server: cause (hint)"
	said    string    // the last failure said
	tries   int       // failed tries since delivery last worked
	since   time.Time // the first of them
}

// failed records a failed try of every server tried, each "server: cause".
func (r *failureReport) failed(causes []string) {
	if r.tries == 0 {
		r.since = time.Now()
	}
	r.tries++
	r.pending = strings.Join(causes, "; ")
}

// retrying is called as a try begins, while held metrics wait: a failure
// not said yet is said now, with what waits.
func (r *failureReport) retrying(held int) {
	if r.pending == "" {
		return
	}
	if r.pending == r.said {
		r.log.Debugf("delivery failed again (%d tries since %s): %s", r.tries, r.since.Format(time.TimeOnly), r.pending)
	} else {
		r.log.Errorf("delivery failed: %s; %d metrics wait for the next try", r.pending, held)
		r.said = r.pending
	}
	r.pending = ""
}

// delivered is called when a server took what was pending.
func (r *failureReport) delivered(addr string) {
	if r.tries > 0 && r.said != "" {
		r.log.Infof("delivering to %s again, after %d failed tries since %s", addr, r.tries, r.since.Format(time.TimeOnly))
	}
	r.tries, r.pending, r.said = 0, "", ""
}

// unsaid returns the last try's failure when it has not been said yet,
// for Close's line; "" when there is none or it was said.
func (r *failureReport) unsaid() string {
	if r.pending == r.said {
		return ""
	}
	return r.pending
}

// cause is one server's failure for a report: the server, the error and
// what to check.
func cause(addr string, err error) string {
	s := addr + ": " + err.Error()
	if h := hint(addr, err); h != "" {
		s += " (" + h + ")"
	}
	return s
}

// hint says what to check for the errors a user can fix.
func hint(addr string, err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return "check the host name in servers"
	case errors.As(err, &dnsErr):
		return "the name could not be looked up: check the resolver"
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("is carbon or statsd listening on %s?", addr)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to it: check the address and the network"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "it took nothing within timeout: is it reachable, or overloaded?"
	}
	return ""
}
