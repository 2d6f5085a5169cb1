package testbed

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// InstallNPM runs `npm install` of packages (each "name@version") once
// into CACHE/dir, under a file lock so that test processes running at the
// same time install once, and returns CACHE/dir/node_modules. marker is
// a file under node_modules that exists once the install is complete.
func InstallNPM(ctx context.Context, dir, marker string, packages ...string) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	prefix := filepath.Join(cache, dir)
	modules := filepath.Join(prefix, "node_modules")
	done := filepath.Join(modules, filepath.FromSlash(marker))
	if _, err := os.Stat(done); err == nil {
		return modules, nil
	}
	err = withFileLock(ctx, prefix+".lock", func() error {
		if _, err := os.Stat(done); err == nil {
			return nil // installed by another process meanwhile
		}
		npm, err := findProgram("npm", "apt-get install nodejs npm")
		if err != nil {
			return err
		}
		if err := os.MkdirAll(prefix, 0o755); err != nil {
			return fmt.Errorf("npm install dir: %w", err)
		}
		var out bytes.Buffer
		args := append([]string{"install", "--no-audit", "--no-fund", "--prefix", prefix}, packages...)
		cmd := exec.CommandContext(ctx, npm, args...)
		cmd.Dir = prefix
		cmd.Stdout = &out
		cmd.Stderr = &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("npm install %s into %s: %w: %s", strings.Join(packages, " "), prefix, err, tail(out.Bytes(), 2000))
		}
		if _, err := os.Stat(done); err != nil {
			return fmt.Errorf("npm install %s: %w", strings.Join(packages, " "), err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return modules, nil
}
