package testbed

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TelegrafVersion is the Telegraf release TelegrafBinary builds.
const TelegrafVersion = "v1.39.3"

// TelegrafBuildTags are the plugins compiled into the custom Telegraf.
const TelegrafBuildTags = "custom,inputs.execd,inputs.haproxy,outputs.execd,outputs.file,outputs.graphite,serializers.influx,serializers.graphite"

const telegrafBuildTimeout = 20 * time.Minute

// TelegrafBinary returns the path of a custom Telegraf v1.39.3 build with
// inputs.execd, inputs.haproxy, outputs.execd, outputs.file,
// outputs.graphite and the influx and graphite serializers, built with
// `go install` from the module proxy into CacheDir()/telegraf-v1.39.3 on
// first use and reused while it answers --version.
func TelegrafBinary(ctx context.Context) (string, error) {
	// go install of a version leaves Telegraf's version "unknown": set
	// it as Telegraf's Makefile does.
	ldflags := "-X github.com/influxdata/telegraf/internal.Version=" + strings.TrimPrefix(TelegrafVersion, "v")
	return installGoProgram(ctx, goProgram{
		name: "telegraf", pkg: "github.com/influxdata/telegraf/cmd/telegraf", version: TelegrafVersion,
		flags: []string{"-tags", TelegrafBuildTags, "-ldflags", ldflags},
		works: telegrafWorks, took: "2-3 minutes on a cold build cache",
	}, telegrafBuildTimeout)
}

// goProgram is a program of the Go module proxy that tests run.
type goProgram struct {
	name, pkg, version string
	flags              []string // go install's build flags
	// works reports whether the program at bin is the one wanted.
	works func(ctx context.Context, bin string) bool
	took  string // how long a cold build takes, for the log
}

// installGoProgram returns the path of p, built with `go install` from
// the module proxy into CacheDir()/<name>-<version> on first use (under a
// file lock, outside this module so go.mod is never touched) and reused
// while p.works says so.
func installGoProgram(ctx context.Context, p goProgram, timeout time.Duration) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, p.name+"-"+p.version)
	bin := filepath.Join(dir, p.name)
	if p.works(ctx, bin) {
		return bin, nil
	}
	goBin, err := goTool()
	if err != nil {
		return "", err
	}
	ctx, cancel := withDefaultTimeout(ctx, timeout)
	defer cancel()
	err = withFileLock(ctx, dir+".lock", func() error {
		if p.works(ctx, bin) {
			return nil // built by another process meanwhile
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("%s build dir: %w", p.name, err)
		}
		fmt.Fprintf(os.Stderr, "testbed: building %s %s into %s (%s)\n", p.name, p.version, dir, p.took)
		var out bytes.Buffer
		args := append(append([]string{"install"}, p.flags...), p.pkg+"@"+p.version)
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = cache
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod", "GOWORK=off")
		cmd.Stdout = &out
		cmd.Stderr = &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go install %s@%s: %w: %s", p.pkg, p.version, err, tail(out.Bytes(), 3000))
		}
		if !p.works(ctx, bin) {
			return fmt.Errorf("%s built into %s is not %s %s", p.name, bin, p.pkg, p.version)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return bin, nil
}

// builtFrom reports whether bin is a Go program built from module version
// version (its build information says so).
func builtFrom(bin, version string) bool {
	info, err := buildinfo.ReadFile(bin)
	return err == nil && info.Main.Version == version
}

// Telegraf returns TelegrafBinary's Telegraf to test t: under go test
// -short it skips t before anything is built, and it fails t when the
// build fails.
func Telegraf(t testing.TB) string {
	t.Helper()
	NeedsPeer(t, "Telegraf "+TelegrafVersion+" (built from the Go module proxy, 2-3 minutes cold)")
	ctx, cancel := context.WithTimeout(context.Background(), telegrafBuildTimeout)
	defer cancel()
	bin, err := TelegrafBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// telegrafWorks reports whether bin runs and is the expected version.
func telegrafWorks(ctx context.Context, bin string) bool {
	if _, err := os.Stat(bin); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	return err == nil && strings.Contains(string(out), strings.TrimPrefix(TelegrafVersion, "v"))
}

// goTool finds the go command: PATH, then the toolchain running this code.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	// The toolchain that built the running binary, where Go installs it.
	for _, p := range []string{"/usr/local/go/bin/go", "/usr/lib/go/bin/go"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("go not found in PATH: install Go 1.26 (https://go.dev/doc/install)")
}

// ModuleRoot is the root directory of this checkout (where go.mod is),
// found from this source file's location, or else from `go env GOMOD` in
// the working directory (for binaries built with -trimpath).
func ModuleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return root, nil
		}
	}
	goBin, err := goTool()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("module root: not inside the hap-monitor checkout (go env GOMOD = %q, %v)", gomod, err)
	}
	return filepath.Dir(gomod), nil
}

var hapMonitorBuild struct {
	mu   sync.Mutex
	path string
}

// HapMonitorBinary builds ./cmd/hap-monitor of this checkout into a temp
// dir once per process and returns its path (a failed build is retried by
// the next call). Dirs left by processes that have exited are removed on
// the way.
func HapMonitorBinary(ctx context.Context) (string, error) {
	b := &hapMonitorBuild
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.path != "" {
		return b.path, nil
	}
	path, err := buildHapMonitor(ctx)
	if err != nil {
		return "", err
	}
	b.path = path
	return path, nil
}

const binDirPrefix = "hap-monitor-bin-"

func buildHapMonitor(ctx context.Context) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	goBin, err := goTool()
	if err != nil {
		return "", err
	}
	removeStaleBinDirs()
	dir := filepath.Join(os.TempDir(), binDirPrefix+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("hap-monitor build dir: %w", err)
	}
	ctx, cancel := withDefaultTimeout(ctx, 10*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, "hap-monitor")
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/hap-monitor")
	cmd.Dir = root
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/hap-monitor in %s: %w: %s", root, err, tail(out.Bytes(), 3000))
	}
	return bin, nil
}

// removeStaleBinDirs deletes build dirs whose process is gone.
func removeStaleBinDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), binDirPrefix+"*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), binDirPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			_ = os.RemoveAll(d)
		}
	}
}
