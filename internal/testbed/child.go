package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// child is a peer's program run as a child process, which the test can
// stop and start again (a DNS server, an OCSP responder, an ACME server).
type child struct {
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs cmd, unless the child runs already, with its output written
// afresh to logPath ("" leaves cmd's own), then calls ready every interval
// until it returns nil, the program ends, or ctx ends (ready's last
// error said).
func (c *child) start(ctx context.Context, cmd *exec.Cmd, logPath string, every time.Duration, ready func(context.Context) error) error {
	name := filepath.Base(cmd.Path)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return nil
	}
	var logf *os.File
	if logPath != "" {
		var err error
		if logf, err = os.Create(logPath); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	if err := cmd.Start(); err != nil {
		if logf != nil {
			logf.Close()
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		close(done)
	}()
	c.cmd, c.done = cmd, done
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-done:
			c.cmd = nil
			return fmt.Errorf("%s ended at start", name)
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (%v)", name, ctx.Err(), err)
		case <-time.After(every):
		}
	}
}

// signal sends sig to the child, if it runs.
func (c *child) signal(sig os.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	return c.cmd.Process.Signal(sig)
}

// stop ends the child, if it runs.
func (c *child) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	c.cmd = nil
}
