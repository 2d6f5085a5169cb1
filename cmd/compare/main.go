// Command compare measures hap-monitor against the floor (reading HAProxy's
// answer to EOF and nothing else) and against Telegraf, side by side on the
// same real HAProxy, and prints medians and ratios as a Markdown table.
//
//	go run ./cmd/compare -sizes 10x10,100x10,1000x10,4000x10,10000x10 -runs 5
//
// With -baseline BIN, an earlier build's -once, original's command line
// and execd input run in the same rounds, so that a change is judged
// against it on the same machine and moment.
//
// -haproxy picks the HAProxy measured: a release the test bed runs
// (2.2, 2.6, 3.0, 3.2, 3.4, fetched once from Debian's suites) or a binary's
// path; the system's by default. -fieldexclude adds a -once case whose
// input leaves those fields out, to measure what they cost. -certs N
// serves N certificates and adds -once and execd input cases that do not
// read them; -discovery does the same with a peers and a resolvers
// section.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

func main() {
	sizes := flag.String("sizes", "10x10,100x10,1000x10,4000x10,10000x10", "HAProxy sizes to measure, backends x servers, comma separated")
	runs := flag.Int("runs", 5, "runs of each case per size (medians are reported)")
	execdGathers := flag.Int("execd-gathers", 10, "gathers of each execd input run, one per newline on its stdin (0 leaves the case out)")
	skipTelegraf := flag.Bool("skip-telegraf", false, "leave Telegraf out (it is built on first use, 2-3 minutes cold)")
	checks := flag.String("checks", "auto", "HAProxy health checks on the generated servers: on, off, or auto (on where HAProxy's descriptors allow: it keeps one per checked server, and the hard limit of open files here may be lower)")
	baseline := flag.String("baseline", "", "another hap-monitor `binary` (an earlier build) whose -once, original's command line and execd input run beside this one's, interleaved")
	haproxy := flag.String("haproxy", "", "the HAProxy to measure: a `release` (2.2, 2.6, 3.0, 3.2, 3.4, fetched from Debian's suites on first use) or an haproxy binary's path; the system's when empty")
	fieldExclude := flag.String("fieldexclude", "", "also run -once with the input's fieldexclude set to these comma-separated `globs` (\"quic_*,h3*\")")
	certs := flag.Int("certs", 0, "serve this many certificates on a TLS frontend, and also run -once and the execd input without reading them (optional_measurements without haproxy_cert)")
	discovery := flag.Bool("discovery", false, "give HAProxy a peers section and a resolvers section, and also run -once and the execd input without reading them")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := options{runs: *runs, execdGathers: *execdGathers, withTelegraf: !*skipTelegraf, baseline: *baseline,
		checks: *checks, haproxy: *haproxy, certs: *certs, discovery: *discovery}
	if *fieldExclude != "" {
		opts.fieldExclude = strings.Split(*fieldExclude, ",")
	}
	if err := run(ctx, *sizes, opts); err != nil {
		fmt.Fprintln(os.Stderr, "E!", err)
		os.Exit(1)
	}
}

type size struct{ Backends, Servers int }

// withChecks tells whether sz's servers get health checks. HAProxy keeps
// a descriptor per checked server and one per proxy (each binds a
// socket), and refuses to start when they pass the hard limit of open
// files: auto turns checks off for such sizes (here: 20,000 descriptors,
// so 4000x10 and 10000x10 run without checks).
func withChecks(mode string, sz size) bool {
	switch mode {
	case "on":
		return true
	case "off":
		return false
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return true
	}
	need := uint64(sz.Backends*(sz.Servers+1) + 1000) // and HAProxy's own margin
	return need <= lim.Max
}

func (s size) String() string { return fmt.Sprintf("%dx%d", s.Backends, s.Servers) }

func parseSizes(list string) ([]size, error) {
	var out []size
	for _, f := range strings.Split(list, ",") {
		b, sv, ok := strings.Cut(strings.TrimSpace(f), "x")
		nb, err1 := strconv.Atoi(b)
		ns, err2 := strconv.Atoi(sv)
		if !ok || err1 != nil || err2 != nil || nb < 1 || ns < 1 {
			return nil, fmt.Errorf("-sizes: %q is not BACKENDSxSERVERS", f)
		}
		out = append(out, size{nb, ns})
	}
	return out, nil
}

// options are the command line's choices.
type options struct {
	runs, execdGathers int
	withTelegraf       bool
	baseline, checks   string
	haproxy            string   // as -haproxy gives it
	fieldExclude       []string // -fieldexclude's globs
	certs              int      // -certs
	discovery          bool     // -discovery
}

func run(ctx context.Context, sizeList string, opts options) error {
	sizes, err := parseSizes(sizeList)
	if err != nil {
		return err
	}
	switch opts.checks {
	case "on", "off", "auto":
	default:
		return fmt.Errorf("-checks: %q is not on, off or auto", opts.checks)
	}
	if opts.runs < 1 {
		return fmt.Errorf("-runs must be at least 1")
	}
	bins, err := buildBinaries(ctx, opts.withTelegraf)
	if err != nil {
		return err
	}
	bins.Baseline = opts.baseline
	if bins.HAProxy, err = testbed.FindHAProxy(ctx, opts.haproxy); err != nil {
		return fmt.Errorf("-haproxy: %w", err)
	}
	version, err := testbed.HAProxyVersionOf(ctx, bins.HAProxy)
	if err != nil {
		return fmt.Errorf("-haproxy: %w", err)
	}
	host, _ := os.Hostname()
	fmt.Printf("# hap-monitor comparison, %s\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Printf("Machine: %s, %s. HAProxy %s. Runs per case: %d (medians). Command: `go run ./cmd/compare %s`\n\n",
		host, machineSummary(), version, opts.runs, strings.Join(os.Args[1:], " "))
	var all []*sizeResult
	for _, sz := range sizes {
		res, err := measureSize(ctx, bins, sz, opts, withChecks(opts.checks, sz))
		if err != nil {
			return fmt.Errorf("%s: %w", sz, err)
		}
		res.print(os.Stdout)
		all = append(all, res)
	}
	printScaling(os.Stdout, all)
	return nil
}
