package testbed

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMissingProgramNamesItsPackage(t *testing.T) {
	_, err := findProgram("hm-no-such-program", "apt-get install hm-no-such-package")
	if err == nil {
		t.Fatal("findProgram found a program that does not exist")
	}
	for _, want := range []string{"hm-no-such-program", "apt-get install hm-no-such-package"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestCacheDirFromEnv(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	t.Setenv("HAP_MONITOR_CACHE", dir)
	got, err := CacheDir()
	if err != nil || got != dir {
		t.Fatalf("CacheDir() = %q, %v; want %q", got, err, dir)
	}
}

func TestFileLockSerialises(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "x.lock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var inside, overlaps, runs atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := withFileLock(ctx, lock, func() error {
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
				inside.Add(-1)
				runs.Add(1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if runs.Load() != 4 || overlaps.Load() != 0 {
		t.Errorf("%d runs, %d overlapping; want 4 runs, none overlapping", runs.Load(), overlaps.Load())
	}
}
