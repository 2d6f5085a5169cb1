package testbed

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

func TestCarbonStoresTCPAndUDP(t *testing.T) {
	c := NewCarbon(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := time.Now().Unix()

	send := func(network, addr, line string) {
		t.Helper()
		conn, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := fmt.Fprint(conn, line); err != nil {
			t.Fatal(err)
		}
	}
	send("tcp", c.TCPAddr, fmt.Sprintf("hm.test.tcp 42.5 %d\n", now))
	send("udp", c.UDPAddr, fmt.Sprintf("hm.test.udp -7 %d\nhm.test.udp2 3 %d\n", now, now))

	for path, want := range map[string]float64{"hm.test.tcp": 42.5, "hm.test.udp": -7, "hm.test.udp2": 3} {
		points, err := c.WaitPoints(ctx, path, func(p Point) bool { return p.Value == want })
		if err != nil {
			t.Fatal(err)
		}
		if points[len(points)-1].Time != now {
			t.Errorf("%s stored at %d, sent at %d", path, points[len(points)-1].Time, now)
		}
	}
	if _, err := os.Stat(c.WhisperDir + "/hm/test/tcp.wsp"); err != nil {
		t.Errorf("hm.test.tcp not at its whisper path: %v", err)
	}
	paths, err := c.Paths()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(paths) != "[hm.test.tcp hm.test.udp hm.test.udp2]" {
		t.Errorf("Paths() = %v", paths)
	}
	all, err := c.All()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("map[hm.test.tcp:[{%[1]d 42.5}] hm.test.udp:[{%[1]d -7}] hm.test.udp2:[{%[1]d 3}]]", now)
	if fmt.Sprint(all) != want {
		t.Errorf("All() = %v, want %s", all, want)
	}
}

func TestCarbonTaggedPath(t *testing.T) {
	c := NewCarbon(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := net.Dial("tcp", c.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "haproxy.scur;sv=web.1;proxy=app 5 %d\n", time.Now().Unix())
	conn.Close()
	if _, err := c.WaitPoints(ctx, "haproxy.scur;proxy=app;sv=web.1", nil); err != nil {
		t.Fatal(err)
	}
	paths, err := c.Paths()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(paths) != "[haproxy.scur;proxy=app;sv=web.1]" {
		t.Errorf("Paths() = %v", paths)
	}
}

func TestCarbonCloseLeavesNothing(t *testing.T) {
	NeedsPeer(t, "carbon-cache")
	c, err := StartCarbon(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pid := c.PID
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if processAlive(pid) {
		t.Errorf("carbon-cache pid %d still running after Close", pid)
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close (stat: %v)", c.Dir, err)
	}
}
