package testbed

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// sendLines writes text to a plaintext receiver on one connection.
func sendLines(t *testing.T, addr, text string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
}

func TestRelaySpreadsOverCachesAndRestarts(t *testing.T) {
	a := NewCarbonWith(t, CarbonOptions{Instance: "a"})
	b := NewCarbonWith(t, CarbonOptions{Instance: "b"})
	r, err := StartRelay(context.Background(), a, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() }) // when the test fails before its own Close
	want := fmt.Sprintf("[%s:a %s:b]", a.PickleAddr, b.PickleAddr)
	if fmt.Sprint(r.Destinations) != want {
		t.Errorf("Destinations = %v, want %s", r.Destinations, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// A burst of 3000 lines: more than carbon-relay's default queue.
	const n = 3000
	now := time.Now().Unix()
	batch := func(ts int64) string {
		var s strings.Builder
		for i := range n {
			fmt.Fprintf(&s, "relay.test.p%04d %d %d\n", i, i, ts)
		}
		return s.String()
	}
	// where reads both caches until every path has points points in
	// exactly one of them, and returns which cache holds each path.
	where := func(points int) map[string]string {
		t.Helper()
		var holder map[string]string
		var problem string
		for {
			holder, problem = map[string]string{}, ""
			for _, c := range []*Carbon{a, b} {
				all, err := c.All()
				if err != nil {
					problem = err.Error() // a whisper file being created
				}
				for path, ps := range all {
					if other, ok := holder[path]; ok {
						t.Fatalf("%s is on both caches (%s and %s)", path, other, c.Instance)
					}
					holder[path] = c.Instance
					if len(ps) != points && problem == "" {
						problem = fmt.Sprintf("%s has %d points on %s, want %d", path, len(ps), c.Instance, points)
					}
				}
			}
			if len(holder) == n && problem == "" {
				return holder
			}
			if sleepCtx(ctx, 200*time.Millisecond) != nil {
				t.Fatalf("%d of %d paths on the caches; %s", len(holder), n, problem)
			}
		}
	}
	sendLines(t, r.TCPAddr, batch(now))
	first := where(1)
	count := map[string]int{}
	for _, inst := range first {
		count[inst]++
	}
	if count["a"] == 0 || count["b"] == 0 {
		t.Errorf("paths per cache %v: consistent hashing spreads them over both", count)
	}
	t.Logf("paths per cache: %v", count)

	addr, pid := r.TCPAddr, r.PID
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if processAlive(pid) {
		t.Fatalf("carbon-relay pid %d still running after Stop", pid)
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Fatalf("%s accepts while the relay is stopped", addr)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if r.TCPAddr != addr {
		t.Fatalf("restarted on %s, was %s", r.TCPAddr, addr)
	}
	sendLines(t, r.TCPAddr, batch(now+1))
	second := where(2)
	for path, inst := range first {
		if second[path] != inst {
			t.Errorf("%s moved from %s to %s across the restart", path, inst, second[path])
		}
	}

	pid = r.PID
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if processAlive(pid) {
		t.Errorf("carbon-relay pid %d still running after Close", pid)
	}
	if _, err := os.Stat(r.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close (stat: %v)", r.Dir, err)
	}
}

func TestRelayNeedsInstanceNames(t *testing.T) {
	for _, caches := range [][]*Carbon{
		{},
		{{PickleAddr: "127.0.0.1:1"}},
		{{PickleAddr: "127.0.0.1:1", Instance: "a"}, {PickleAddr: "127.0.0.1:2", Instance: "a"}},
	} {
		if r, err := StartRelay(context.Background(), caches...); err == nil {
			_ = r.Close()
			t.Errorf("StartRelay(%d caches) started without distinct instance names", len(caches))
		}
	}
}
