package testbed

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestHAProxyMasterWorker reloads a master-worker HAProxy with a session
// open, and checks that the old worker stays while the session lives and
// that Close stops every process, the old worker's included.
func TestHAProxyMasterWorker(t *testing.T) {
	NeedsPeer(t, "HAProxy")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := StartHAProxy(ctx, HAProxyOptions{MasterWorker: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Close() }()
	p, err := h.Processes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.Master != h.PID || len(p.Current) != 1 || len(p.Old) != 0 || p.Reloads != 0 {
		t.Fatalf("show proc at start: %+v (pid %d)", p, h.PID)
	}
	first := p.Current[0]
	held, err := h.HoldConnection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = held.Close() }()
	second, err := h.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p, err = h.Processes(ctx); err != nil {
		t.Fatal(err)
	}
	if second == first || !slices.Equal(p.Current, []int{second}) || !slices.Equal(p.Old, []int{first}) || p.Reloads != 1 ||
		!slices.Equal(p.OldReloads, []int{1}) || !slices.Equal(p.CurrentReloads, []int{0}) {
		t.Fatalf("show proc after a reload: %+v (first worker %d, second %d)", p, first, second)
	}
	if st, err := h.Status(ctx, ScenarioBackend, "web-4"); err != nil || st != "DRAIN" {
		t.Errorf("the new worker's web-4: %q %v, want DRAIN", st, err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{h.PID, first, second} {
		if processAlive(pid) {
			t.Errorf("pid %d still running after Close", pid)
		}
	}
	if err := held.Err(); err != nil {
		t.Logf("the session ended with HAProxy: %v", err)
	}
}
