package testbed

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestChild: a program that ends before it is ready is said so; one never
// ready is left when ctx ends, with ready's last error; a ready one is
// stopped, and started again.
func TestChild(t *testing.T) {
	notYet := func(context.Context) error { return errors.New("not yet") }
	var c child
	err := c.start(context.Background(), exec.Command("sh", "-c", "exit 3"), "", 10*time.Millisecond, notYet)
	if err == nil || err.Error() != "sh ended at start" {
		t.Errorf("a program that ends: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = c.start(ctx, exec.Command("sleep", "60"), t.TempDir()+"/log", 10*time.Millisecond, notYet)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not yet") {
		t.Errorf("never ready: %v", err)
	}
	c.stop()
	ready := func(context.Context) error { return nil }
	for range 2 {
		if err := c.start(context.Background(), exec.Command("sleep", "60"), "", 10*time.Millisecond, ready); err != nil || c.cmd == nil {
			t.Fatalf("start: %v", err)
		}
		c.stop()
		if c.cmd != nil {
			t.Error("still running after stop")
		}
	}
}
