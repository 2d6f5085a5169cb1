// Command example runs hap-monitor (built from this checkout) on a
// built-in example and shows what it produces twice over:
//
//   - the line protocol Telegraf gets: `hap-monitor -config FILE -test`;
//   - the Graphite lines the original HAP-Monitor's cron line sends:
//     `hap-monitor --backend HOST:PORT::my.system.stats.haproxy --type G
//     --protocol tcp --sockets ...`, delivered to a Graphite receiver the
//     example listens with on 127.0.0.1; it prints the first lines, each
//     row's state and the count.
//
// Without arguments it starts a local HAProxy with servers UP, DOWN,
// MAINT, DRAIN and without checks, and stops it at the end (on Ctrl-C
// too): its sockets and stats page are gone once the example exits. With
// arguments (unix socket paths, tcp://host:port or http(s):// stats URLs)
// it reads those instead.
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

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// scope is the prefix of the Graphite paths, as in the README's recipes.
const scope = "my.system.stats.haproxy"

// shown is how many Graphite lines each selection prints at most.
const shown = 15

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the example and returns its exit status: the higher of the two
// hap-monitor runs' statuses, 1 if the example itself failed.
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
			fmt.Fprintf(stderr, "example: stopped HAProxy and removed %s: its sockets are gone; run ./scripts/example SOCKET to read your own\n", h.Dir)
		}()
		servers = []string{h.AdminSocket}
	}
	buildCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	bin, err := testbed.HapMonitorBinary(buildCtx)
	if err != nil {
		fmt.Fprintf(stderr, "example: %v\n", err)
		return 1
	}
	code, err := lineProtocol(ctx, bin, servers, stdout, stderr)
	if err == nil && ctx.Err() == nil {
		var c int
		c, err = graphite(ctx, bin, servers, stdout, stderr)
		code = max(code, c)
	}
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
	fmt.Fprintf(stderr, "example: HAProxy pid %d, admin socket %s, stats page %s (stopped and removed when the example exits)\n",
		h.PID, h.AdminSocket, h.StatsURL)
	fmt.Fprintf(stderr, "example: backend %s: web-1 UP, web-2 DOWN, web:3 MAINT, web-4 DRAIN, web-5 no check; listen %s: pg.1 UP\n",
		testbed.ScenarioBackend, testbed.ScenarioTCP)
	return h, nil
}

// lineProtocol writes a config naming servers and prints what
// `hap-monitor -config FILE -test` gathers from them.
func lineProtocol(ctx context.Context, bin string, servers []string, stdout, stderr io.Writer) (int, error) {
	dir, err := os.MkdirTemp("", "hm")
	if err != nil {
		return 0, fmt.Errorf("config dir: %w", err)
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "hap-monitor.conf")
	if err := os.WriteFile(cfg, []byte(configText(servers)), 0o644); err != nil {
		return 0, fmt.Errorf("writing %s: %w", cfg, err)
	}
	fmt.Fprintf(stdout, "# Line protocol, what Telegraf's [[inputs.execd]] gets: hap-monitor -config FILE -test, FILE holding\n# %s\n",
		strings.ReplaceAll(strings.TrimSpace(configText(servers)), "\n", "\n# "))
	return hapMonitor(ctx, bin, []string{"-config", cfg, "-test"}, stdout, stderr)
}

// graphite runs the original's command line against a Graphite receiver
// on 127.0.0.1 and prints a selection of what it received.
func graphite(ctx context.Context, bin string, servers []string, stdout, stderr io.Writer) (int, error) {
	sink, err := testbed.StartGraphiteSink(ctx, "127.0.0.1:0", testbed.SinkOptions{})
	if err != nil {
		return 0, err
	}
	defer sink.Stop()
	args := append([]string{"--backend", sink.Addr + "::" + scope, "--type", "G", "--protocol", "tcp", "--sockets"}, servers...)
	code, err := hapMonitor(ctx, bin, args, stdout, stderr)
	if err != nil {
		return 0, err
	}
	drainCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sink.Drain(drainCtx); err != nil {
		return 0, err
	}
	lines := sink.Lines()
	fmt.Fprintf(stdout, "\n# Graphite, what the original HAP-Monitor's cron line sends: its fields under HAProxy's names\n"+
		"# (over TCP here, so that every line arrives; its default is UDP):\n"+
		"# hap-monitor --backend %s::%s --type G --protocol tcp --sockets %s\n"+
		"# %d lines received\n",
		sink.Addr, scope, strings.Join(servers, " "), len(lines))
	if len(lines) == 0 {
		return code, nil
	}
	fmt.Fprintf(stdout, "# the first %d:\n", min(shown, len(lines)))
	printFirst(stdout, lines)
	var states []string
	for _, l := range lines {
		if path, value, _ := strings.Cut(l, " "); strings.Contains(path, ".status.") && strings.HasPrefix(value, "1 ") {
			states = append(states, l)
		}
	}
	fmt.Fprintf(stdout, "# each row's state (the status.<STATE> that is 1), %d of %d rows:\n", min(shown, len(states)), len(states))
	printFirst(stdout, states)
	return code, nil
}

// printFirst prints the first lines, at most shown of them.
func printFirst(w io.Writer, lines []string) {
	for _, l := range lines[:min(shown, len(lines))] {
		fmt.Fprintln(w, l)
	}
}

// hapMonitor runs bin with args and returns its exit status.
func hapMonitor(ctx context.Context, bin string, args []string, stdout, stderr io.Writer) (int, error) {
	runCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, bin, args...)
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	err := cmd.Run()
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
