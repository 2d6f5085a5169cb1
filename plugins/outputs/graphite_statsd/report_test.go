package graphite_statsd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// TestOneFailureOneLine: a server down for many tries is one E! line,
// the repeats at debug level, and the loss at exit one more.
func TestOneFailureOneLine(t *testing.T) {
	addr := testbed.ClosedAddr(t)
	o, logs := newOutput(t, []string{addr}, func(o *GraphiteStatsd) { o.minBackoff, o.maxBackoff = time.Millisecond, time.Millisecond })
	o.Write(seqMetrics(0, 10, t0)) //nolint:errcheck // always nil here
	for range 5 {
		time.Sleep(5 * time.Millisecond) // past the backoff
		o.Write(nil)                     //nolint:errcheck // always nil here
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	var errs []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.HasPrefix(l, "E! ") {
			errs = append(errs, l)
		}
	}
	want := []string{
		"E! [outputs.graphite_statsd] delivery failed: " + addr + ": dial tcp " + addr + ": connect: connection refused (is carbon or statsd listening on " + addr + "?); 10 metrics wait for the next try",
		"E! [outputs.graphite_statsd] 10 metrics were not delivered to " + addr + " and are lost (set spool_dir to keep undelivered metrics for the next run)",
	}
	if fmt.Sprint(errs) != fmt.Sprint(want) {
		t.Errorf("error lines:\n%s\nwant:\n%s", strings.Join(errs, "\n"), strings.Join(want, "\n"))
	}
	if n := strings.Count(logs.String(), "D! [outputs.graphite_statsd] delivery failed again"); n != 4 {
		t.Errorf("%d repeats at debug level, want 4:\n%s", n, logs)
	}
}

func TestHints(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "graphite.invalid", IsNotFound: true}}, "check the host name in servers"},
		{&net.OpError{Op: "dial", Err: &net.DNSError{Err: "server misbehaving", Name: "g", IsTemporary: true}}, "the name could not be looked up: check the resolver"},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "is carbon or statsd listening on g:2003?"},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}, "no route to it: check the address and the network"},
		{fmt.Errorf("write: %w", os.ErrDeadlineExceeded), "it took nothing within timeout: is it reachable, or overloaded?"},
		{fmt.Errorf("TLS handshake with x: no answer within timeout 5s (%w)", context.DeadlineExceeded), "it took nothing within timeout: is it reachable, or overloaded?"},
		{errors.New("tls: bad certificate"), ""},
	} {
		if got := hint("g:2003", tt.err); got != tt.want {
			t.Errorf("hint(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
