// Command example runs hap-monitor's main job on a built-in example: it
// starts a local HAProxy with servers UP, DOWN, MAINT, DRAIN and without
// checks, writes a hap-monitor config naming its admin socket, runs
// `hap-monitor -config FILE -test` (built from this checkout) and prints
// the line protocol it gathers, then stops HAProxy (on Ctrl-C too).
//
// With arguments (unix socket paths, tcp://host:port or http(s):// stats
// URLs), it runs `-test` against those instead of a local HAProxy.
//
//	go run ./cmd/example
//	go run ./cmd/example /run/haproxy/admin.sock http://lb1:8404/stats
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hap-monitor/hap-monitor/plugins/common/testbed"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: example [SOCKET_OR_URL ...]")
		fmt.Fprintln(stderr, "Without arguments, starts a local HAProxy and gathers its statistics once.")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	servers := fs.Args()
	if len(servers) == 0 {
		h, err := startHAProxy(ctx, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "example: %v\n", err)
			return 1
		}
		defer func() {
			if err := h.Close(); err != nil {
				fmt.Fprintf(stderr, "example: %v\n", err)
			}
		}()
		servers = []string{h.AdminSocket}
	}
	code, err := gather(ctx, servers, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "example: %v\n", err)
		return 1
	}
	return code
}

func startHAProxy(ctx context.Context, stderr io.Writer) (*testbed.HAProxy, error) {
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	h, err := testbed.StartHAProxy(startCtx, testbed.HAProxyOptions{})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "example: HAProxy pid %d, admin socket %s, stats page %s\n", h.PID, h.AdminSocket, h.StatsURL)
	fmt.Fprintf(stderr, "example: backend %s: web-1 UP, web-2 DOWN, web:3 MAINT, web-4 DRAIN, web-5 no check; listen %s: pg.1 UP\n",
		testbed.ScenarioBackend, testbed.ScenarioTCP)
	return h, nil
}

// gather writes a config naming servers, runs hap-monitor -test on it and
// returns its exit status.
func gather(ctx context.Context, servers []string, stdout, stderr io.Writer) (int, error) {
	buildCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	bin, err := testbed.HapMonitorBinary(buildCtx)
	if err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp("", "hm")
	if err != nil {
		return 0, fmt.Errorf("config dir: %w", err)
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "hap-monitor.conf")
	if err := os.WriteFile(cfg, []byte(configText(servers)), 0o644); err != nil {
		return 0, fmt.Errorf("writing %s: %w", cfg, err)
	}
	fmt.Fprintf(stderr, "example: hap-monitor -config %s -test\n", cfg)

	runCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, bin, "-config", cfg, "-test")
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case ctx.Err() != nil:
		return 130, nil // interrupted: HAProxy is still stopped by the caller
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode(), nil
	default:
		return 0, fmt.Errorf("running %s: %w", bin, err)
	}
}

// configText is a minimal hap-monitor config gathering servers.
func configText(servers []string) string {
	quoted := make([]string, len(servers))
	for i, s := range servers {
		quoted[i] = strconv.Quote(s)
	}
	return "[[inputs.haproxy]]\n  servers = [" + strings.Join(quoted, ", ") + "]\n"
}
