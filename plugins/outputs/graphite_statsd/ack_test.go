package graphite_statsd

import (
	"errors"
	"net"
	"slices"
	"testing"
)

// fakeProbe answers what a test says the peer has not acknowledged.
type fakeProbe struct {
	unacked int64
	err     error
}

func (f *fakeProbe) Unacknowledged(*net.TCPConn) (int64, error) { return f.unacked, f.err }

// TestLinkAcknowledge: what the peer acknowledged, in wire bytes, moves
// writes and the metrics that end within them to acknowledged; those more
// than retainBytes behind are to be confirmed.
func TestLinkAcknowledge(t *testing.T) {
	const mb = 1 << 20
	for _, tt := range []struct {
		name             string
		unacked          int64
		acked, confirm   int
		progress         bool
		flightLeft, kept []int64
	}{
		{"nothing acknowledged", 30 * mb, 0, 0, false, []int64{5 * mb, 10 * mb, 20 * mb, 30 * mb}, nil},
		{"the first write", 20 * mb, 2, 0, true, []int64{20 * mb, 30 * mb}, []int64{5 * mb, 10 * mb}},
		{"part of the second write counts for nothing", 15 * mb, 2, 0, true, []int64{20 * mb, 30 * mb}, []int64{5 * mb, 10 * mb}},
		{"everything: the oldest are more than retainBytes behind", 0, 4, 3, true, nil, []int64{5 * mb, 10 * mb, 20 * mb, 30 * mb}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Three writes ending at 10, 20 and 30 MB (no TLS: wire = plain),
			// carrying four metrics.
			l := &link{
				wire:   &countConn{n: 30 * mb},
				pieces: []piece{{10 * mb, 10 * mb}, {20 * mb, 20 * mb}, {30 * mb, 30 * mb}},
				flight: []int64{5 * mb, 10 * mb, 20 * mb, 30 * mb},
			}
			acked, confirm, progress := l.acknowledge(tt.unacked)
			if acked != tt.acked || confirm != tt.confirm || progress != tt.progress {
				t.Errorf("acknowledge(%d) = %d, %d, %v; want %d, %d, %v", tt.unacked, acked, confirm, progress, tt.acked, tt.confirm, tt.progress)
			}
			if !slices.Equal(l.flight, tt.flightLeft) || !slices.Equal(l.kept, tt.kept) {
				t.Errorf("in flight %v, kept %v; want %v, %v", l.flight, l.kept, tt.flightLeft, tt.kept)
			}
		})
	}
}

// TestPollWithAFakeProbe: the buffer follows what the probe says, and a
// probe that fails changes nothing.
func TestPollWithAFakeProbe(t *testing.T) {
	probe := &fakeProbe{unacked: 300}
	o, _ := newOutput(t, []string{"127.0.0.1:1"}, func(o *GraphiteStatsd) { o.probe = probe })
	o.buf.Add(seqMetrics(0, 3, t0))
	if n := len(o.buf.Take(3)); n != 3 {
		t.Fatalf("took %d", n)
	}
	l := &link{
		wire:   &countConn{n: 300},
		pieces: []piece{{100, 100}, {200, 200}, {300, 300}},
		flight: []int64{100, 200, 300},
	}
	if q, err := o.poll(l); err != nil || q != 300 || o.buf.String() != "0 acknowledged, 3 in flight, 0 pending" {
		t.Fatalf("nothing acknowledged: poll = %d, %v; buffer %s", q, err, o.buf)
	}
	probe.unacked = 100
	if _, err := o.poll(l); err != nil || o.buf.String() != "2 acknowledged, 1 in flight, 0 pending" {
		t.Fatalf("200 of 300 bytes acknowledged: %v; buffer %s", err, o.buf)
	}
	probe.err = errors.New("ioctl: bad file descriptor")
	if _, err := o.poll(l); !errors.Is(err, probe.err) || o.buf.String() != "2 acknowledged, 1 in flight, 0 pending" {
		t.Fatalf("a failing probe: %v; buffer %s", err, o.buf)
	}
	o.buf.Retry() // for Close: nothing was sent anywhere
}
