// Command hap-monitor reads HAProxy's statistics and delivers them to
// Telegraf (execd), Graphite or statsd.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
	_ "github.com/hap-monitor/hap-monitor/plugins/inputs/haproxy"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// Exit statuses.
const (
	exitOK      = 0
	exitRuntime = 1 // something failed at run time; everything else was still done
	exitUsage   = 2 // bad flags or config: nothing was run
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hap-monitor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "TOML file with [[inputs.haproxy]] and/or [[outputs.graphite_statsd]] sections")
	testMode := fs.Bool("test", false, "gather once, print line protocol on stdout, deliver nothing, exit")
	sampleConfig := fs.Bool("sample-config", false, "print a sample configuration and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	debugLog := fs.Bool("debug", false, "log debug messages")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "E! unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}

	switch {
	case *showVersion:
		fmt.Fprintln(stdout, "hap-monitor", buildVersion())
		return exitOK
	case *sampleConfig:
		fmt.Fprint(stdout, sampleConfigText())
		return exitOK
	}

	level := telegraf.Info
	if *debugLog {
		level = telegraf.Debug
	}
	logs := logger.NewSink(stderr, level)
	if *configPath == "" {
		fmt.Fprintln(stderr, "E! -config FILE is required (see -sample-config)")
		return exitUsage
	}
	cfg, err := config.LoadFile(*configPath, logs)
	if err != nil {
		fmt.Fprintf(stderr, "E! %v\n", err)
		return exitUsage
	}
	if !*testMode {
		fmt.Fprintln(stderr, "E! only -test is implemented so far")
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_ = ctx
	_ = stdin
	return gatherOnce(cfg, logs, stdout)
}

// gatherOnce runs every input once and prints what they gathered.
func gatherOnce(cfg *config.Config, logs *logger.Sink, stdout io.Writer) int {
	status := exitOK
	enc := shim.NewEncoder(stdout)
	for _, in := range cfg.Inputs {
		log := logger.New(logs, in.ID())
		acc := &shim.Accumulator{OnError: func(err error) { log.Error(err) }}
		if err := in.Input.Gather(acc); err != nil {
			acc.AddError(err)
		}
		metrics, errs := acc.Drain()
		if len(errs) > 0 {
			status = exitRuntime
		}
		for _, m := range metrics {
			if err := enc.Encode(m); err != nil {
				log.Warn(err)
			}
		}
	}
	if err := enc.Flush(); err != nil {
		logger.New(logs, "").Error(fmt.Errorf("writing stdout: %w", err))
		return exitRuntime
	}
	return status
}

func sampleConfigText() string {
	return "# hap-monitor sample configuration\n" // completed with the plugins
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

var _ = errors.New
