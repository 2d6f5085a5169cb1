// Command hap-monitor reads HAProxy's statistics and delivers them to
// Telegraf (execd), Graphite or statsd.
//
// What it does follows from its configuration: with only inputs it is a
// Telegraf execd input (line protocol on stdout), with only outputs a
// Telegraf execd output (line protocol on stdin), with both a pipeline
// (-once for cron). The original HAP-Monitor's command line (--backend,
// --type, --sockets, --verbose, --protocol) builds a pipeline and runs it
// once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
	_ "github.com/hap-monitor/hap-monitor/plugins/inputs/haproxy"
	_ "github.com/hap-monitor/hap-monitor/plugins/outputs/graphite_statsd"
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
	// First of all: from here on no signal, SIGPIPE included, ends the
	// process before its outputs have delivered or spooled what they hold.
	// The collector runs at Go's default (GOGC=100): a gather makes almost
	// no garbage now that rows are carved from recycled arenas, and a
	// larger target only held more memory (BENCHMARKS.md). Go code runs
	// on one CPU unless GOMAXPROCS says otherwise (procs.go).
	sigs := shim.CatchSignals()
	limitProcs()
	os.Exit(runWithSignals(context.Background(), sigs, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// options are the parsed flags.
type options struct {
	configPath      string
	once            bool
	test            bool
	pollInterval    time.Duration
	pollIntervalSet bool
	pollDisabled    bool
	sample          sampleFlag
	version         bool
	debug           bool
	legacy          *legacy
}

// sampleFlag is -sample-config: a boolean flag that may also be given a
// plugin name (-sample-config=inputs.haproxy, or the name as the next
// argument).
type sampleFlag struct {
	set   bool
	names []string
}

func (s *sampleFlag) String() string   { return strings.Join(s.names, ",") }
func (s *sampleFlag) IsBoolFlag() bool { return true }
func (s *sampleFlag) Set(v string) error {
	switch v {
	case "true":
		s.set = true
	case "false":
		s.set = false
	default:
		s.set, s.names = true, append(s.names, v)
	}
	return nil
}

// parseFlags parses args; usage errors name the flag. -h prints the usage
// on stdout, as Telegraf does; a usage error prints it on stderr.
func parseFlags(args []string, stdout, stderr io.Writer) (*options, error) {
	l, rest, err := splitLegacy(args)
	if err != nil {
		return nil, err
	}
	o := &options{legacy: l}
	fs := flag.NewFlagSet("hap-monitor", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, reported once by the caller
	fs.Usage = func() {}     // printed below, for -h only
	fs.StringVar(&o.configPath, "config", "", "TOML `file` with [[inputs.haproxy]] and/or [[outputs.graphite_statsd]] sections")
	fs.BoolVar(&o.once, "once", false, "pipeline: gather once, deliver, exit (cron)")
	fs.BoolVar(&o.test, "test", false, "gather once, print line protocol on stdout, deliver nothing, exit")
	fs.DurationVar(&o.pollInterval, "poll_interval", 0, "time between gathers of the execd input and the pipeline, for every input (default each input's interval, else [agent] interval, else 10s)")
	fs.BoolVar(&o.pollDisabled, "poll_interval_disabled", false, "execd input: gather only on stdin newlines and signals")
	fs.Var(&o.sample, "sample-config", "print the sample configuration (all, or the plugin named next, e.g. inputs.haproxy) and exit")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.BoolVar(&o.debug, "debug", false, "log debug messages")
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(fs, stdout)
			return nil, err
		}
		return nil, fmt.Errorf("%w (hap-monitor -h prints the usage)", err)
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "poll_interval" {
			o.pollIntervalSet = true
		}
	})
	if o.sample.set {
		o.sample.names = append(o.sample.names, fs.Args()...)
	} else if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags come first; see -h)", fs.Arg(0))
	}
	return o, o.check()
}

func (o *options) check() error {
	switch {
	case o.pollIntervalSet && o.pollInterval <= 0:
		return fmt.Errorf("-poll_interval %s: must be positive (use -poll_interval_disabled to turn it off)", o.pollInterval)
	case o.legacy.active() && o.configPath != "":
		return fmt.Errorf("-config cannot be combined with %s: put the sockets and backend in the config file", strings.Join(o.legacy.used, ", "))
	}
	return nil
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, `Usage:
  hap-monitor -config FILE [-once] [-poll_interval 10s | -poll_interval_disabled] [-debug]
  hap-monitor -config FILE -test
  hap-monitor --backend HOST[:PORT][::SCOPE] [--type G|S] [--protocol udp|tcp] --sockets SOCKET... [--verbose]
  hap-monitor -sample-config [inputs.haproxy | outputs.graphite_statsd]
  hap-monitor -version

The config decides the mode: inputs only, a Telegraf execd input; outputs
only, a Telegraf execd output; both, a pipeline.

Flags:
`)
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
	fmt.Fprint(w, `  --backend HOST[:PORT][::SCOPE]
    	the original HAP-Monitor's Graphite or statsd server and path prefix
    	(PORT: 2003 for Graphite, 8125 for statsd; no SCOPE: paths start at the host)
  --type G|S
    	G: Graphite, S: statsd (default S)
  --protocol udp|tcp
    	transport to the backend (default udp)
  --sockets SOCKET...
    	HAProxy stats sockets, one or more
  --verbose
    	same as -debug

Environment: GOMAXPROCS=N lets Go code run on N CPUs at a time (default 1).

Exit status: 0 all gathered and delivered, 1 a run-time failure (the rest was
still delivered), 2 bad usage or configuration.
`)
}

// run runs hap-monitor with args, deaf to signals: cancelling ctx stands
// for SIGTERM.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runWithSignals(ctx, nil, args, stdin, stdout, stderr)
}

// runWithSignals runs hap-monitor with args and returns its exit status.
// sigs (from shim.CatchSignals, nil for none) end the run through its
// normal shutdown; in the execd input mode SIGHUP, SIGUSR1 and SIGUSR2 ask
// for a gather instead.
func runWithSignals(ctx context.Context, sigs <-chan os.Signal, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "E! %v\n", err)
		return exitUsage
	}
	switch {
	case o.version:
		fmt.Fprintln(stdout, "hap-monitor", buildVersion())
		return exitOK
	case o.sample.set:
		text, err := sampleConfigText(o.sample.names)
		if err != nil {
			fmt.Fprintf(stderr, "E! -sample-config: %v\n", err)
			return exitUsage
		}
		fmt.Fprint(stdout, text)
		return exitOK
	}

	level := telegraf.Info
	if o.debug || o.legacy.verbose {
		level = telegraf.Debug
	}
	logs := logger.NewSink(stderr, level)
	cfg, err := o.load(logs)
	if err != nil {
		fmt.Fprintf(stderr, "E! %v\n", err)
		return exitUsage
	}
	closeLog, err := applyAgentLogging(cfg.Agent, logs, o.debug || o.legacy.verbose)
	if err != nil {
		fmt.Fprintf(stderr, "E! -config %s: [agent] logfile: %v\n", cfg.Source, err)
		return exitUsage
	}
	defer closeLog()
	cfg.LogIgnored(logger.New(logs, "agent"))
	logProcs(logger.New(logs, "agent"))
	if err := o.runMode(ctx, sigs, cfg, stdin, stdout, logs); err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "E! %v\n", err)
			return exitUsage
		}
		logger.New(logs, "").Error(err)
		return exitRuntime
	}
	return exitOK
}

// errUsage marks a flag combination the config makes meaningless.
var errUsage = errors.New("usage")

// load reads -config, or builds the configuration the original's flags
// stand for.
func (o *options) load(logs *logger.Sink) (*config.Config, error) {
	if o.legacy.active() {
		text, err := o.legacy.configText()
		if err != nil {
			return nil, err
		}
		cfg, err := config.Parse([]byte(text), "command line", logs)
		if err != nil {
			return nil, o.legacy.blame(err)
		}
		o.once = true
		return cfg, nil
	}
	if o.configPath == "" {
		return nil, errors.New("-config FILE is required (see -sample-config, or the original's --backend and --sockets)")
	}
	cfg, err := config.LoadFile(o.configPath, logs)
	if err != nil {
		return nil, fmt.Errorf("-config: %w", err)
	}
	if len(cfg.Inputs) == 0 && len(cfg.Outputs) == 0 {
		return nil, fmt.Errorf("-config %s: no [[inputs.haproxy]] or [[outputs.graphite_statsd]] section", o.configPath)
	}
	return cfg, nil
}

// runMode runs what the config holds, until sigs or ctx stop it.
func (o *options) runMode(ctx context.Context, sigs <-chan os.Signal, cfg *config.Config, stdin io.Reader, stdout io.Writer, logs *logger.Sink) error {
	hasIn, hasOut := len(cfg.Inputs) > 0, len(cfg.Outputs) > 0
	execdInput := hasIn && !hasOut && !o.test && !o.once
	ctx, triggers, release := shim.HandleSignals(ctx, sigs, execdInput, logger.New(logs, ""))
	defer release()
	switch {
	case o.test || (o.once && !hasOut):
		if !hasIn {
			return fmt.Errorf("%w: -test needs [[inputs.haproxy]] in the config", errUsage)
		}
		return shim.GatherOnce(cfg, stdout, logs)
	case hasIn && hasOut:
		if o.pollDisabled && !o.once {
			return fmt.Errorf("%w: -poll_interval_disabled applies to the execd input; a pipeline gathers every -poll_interval, or once with -once", errUsage)
		}
		opts := shim.PipelineOptions{Once: o.once}
		if o.pollIntervalSet {
			opts.Interval = o.pollInterval
		}
		return shim.RunPipeline(ctx, cfg, opts, logs)
	case hasIn:
		opts := shim.InputOptions{Clock: !o.pollDisabled, Triggers: triggers}
		if o.pollIntervalSet {
			opts.Interval = o.pollInterval
		}
		return shim.RunInput(ctx, cfg, opts, stdin, stdout, logs)
	default:
		opts := shim.OutputOptions{BatchSize: cfg.Agent.BatchSize(), FlushInterval: cfg.Agent.Flush(), FlushJitter: time.Duration(cfg.Agent.FlushJitter)}
		return shim.RunOutput(ctx, cfg, opts, stdin, logs)
	}
}

// applyAgentLogging applies [agent] debug, quiet and logfile to logs; a
// -debug flag wins over quiet. The returned func closes the log file.
func applyAgentLogging(a config.Agent, logs *logger.Sink, debugFlag bool) (func(), error) {
	switch {
	case debugFlag || a.Debug:
		logs.SetLevel(telegraf.Debug)
	case a.Quiet:
		logs.SetLevel(telegraf.Error)
	}
	if a.Logfile == "" {
		return func() {}, nil
	}
	f, err := os.OpenFile(a.Logfile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	logs.SetOutput(f)
	return func() { f.Close() }, nil
}

// buildVersion says what was built (version.go).
func buildVersion() string {
	return describeBuild(version, readBuildInfo())
}
