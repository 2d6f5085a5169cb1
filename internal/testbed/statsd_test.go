package testbed

import (
	"context"
	"net"
	"os"
	"testing"
	"time"
)

func TestStatsdDeliversGaugeToCarbon(t *testing.T) {
	c := NewCarbon(t)
	s := NewStatsd(t, c.TCPAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	conn, err := net.Dial("udp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hm.web-1.scur:17|g\nhm.web-1.neg:0|g\nhm.web-1.neg:-3|g")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitPoints(ctx, StatsdStatsPrefix+"hm.web-1.scur", func(p Point) bool { return p.Value == 17 }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitPoints(ctx, StatsdStatsPrefix+"hm.web-1.neg", func(p Point) bool { return p.Value == -3 }); err != nil {
		t.Fatal(err)
	}

	pid := s.PID()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if processAlive(pid) {
		t.Errorf("statsd pid %d still running after Close", pid)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close (stat: %v)", s.Dir, err)
	}
}
