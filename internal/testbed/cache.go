package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// CacheDir is where the test bed keeps what it installs or builds once
// (statsd from npm, the Telegraf binary): $HAP_MONITOR_CACHE if set, else
// os.UserCacheDir()/hap-monitor, else os.TempDir()/hap-monitor-cache. It
// is created if missing.
func CacheDir() (string, error) {
	dir := os.Getenv("HAP_MONITOR_CACHE")
	if dir == "" {
		if base, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(base, "hap-monitor")
		} else {
			dir = filepath.Join(os.TempDir(), "hap-monitor-cache")
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("test bed cache dir: %w", err)
	}
	return dir, nil
}

// withFileLock runs fn while holding an exclusive flock on path, so that
// concurrent test processes install or build a thing once. It gives up
// when ctx ends.
func withFileLock(ctx context.Context, path string, fn func() error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("lock file %s: %w", path, err)
	}
	defer f.Close()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("locking %s: %w", path, err)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for lock %s: %w", path, err)
		}
	}
	defer func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }()
	return fn()
}
