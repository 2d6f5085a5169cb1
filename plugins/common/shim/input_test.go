package shim

import (
	"bufio"
	"context"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// chanReader hands each chunk sent on ch to one Read; closing ch is EOF.
// A send completes only when a Read takes it, so once the next send
// completes the runner has finished with the previous chunk.
type chanReader struct{ ch chan string }

func (c chanReader) Read(p []byte) (int, error) {
	s, ok := <-c.ch
	if !ok {
		return 0, io.EOF
	}
	return copy(p, s), nil
}

type inputRun struct {
	in     *countInput
	stdin  chanReader
	out    *bufio.Scanner
	done   chan error
	logs   *testbed.SyncBuffer
	cancel context.CancelFunc
}

func startInput(t *testing.T, conf string, opts InputOptions, prepare func(*countInput)) *inputRun {
	t.Helper()
	cfg, sink, logs := load(t, conf)
	in := cfg.Inputs[0].Input.(*countInput)
	if prepare != nil {
		prepare(in)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	r := &inputRun{in: in, stdin: chanReader{make(chan string)}, out: bufio.NewScanner(pr), done: make(chan error, 1), logs: logs, cancel: cancel}
	go func() {
		err := RunInput(ctx, cfg, opts, r.stdin, pw, sink)
		_ = pw.Close()
		r.done <- err
	}()
	t.Cleanup(func() { cancel(); _ = pr.Close() })
	return r
}

// line reads the next line the runner wrote.
func (r *inputRun) line(t *testing.T) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		if r.out.Scan() {
			got <- r.out.Text()
		}
		close(got)
	}()
	select {
	case l, ok := <-got:
		if !ok {
			t.Fatal("stdout closed")
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no line on stdout within 10s")
	}
	return ""
}

func (r *inputRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("runner did not return within 10s")
	}
	return nil
}

// rest reads stdout to its end.
func (r *inputRun) rest() []string {
	var out []string
	for r.out.Scan() {
		out = append(out, r.out.Text())
	}
	return out
}

const oneInput = "[[inputs.shim_count]]\n  name = \"a\"\n"

func TestInputGathersOncePerStdinLineAndExitsAtEOF(t *testing.T) {
	r := startInput(t, oneInput, InputOptions{}, nil)
	for i, want := range []string{"n=1i", "n=2i", "n=3i"} {
		r.stdin.ch <- "\n"
		if l := r.line(t); !strings.HasPrefix(l, "count,src=a "+want+" ") {
			t.Fatalf("gather %d wrote %q, want count,src=a %s <ts>", i+1, l, want)
		}
	}
	close(r.stdin.ch)
	if err := r.wait(t); err != nil {
		t.Fatalf("RunInput at EOF: %v", err)
	}
	if extra := r.rest(); len(extra) != 0 || r.in.gathers() != 3 {
		t.Errorf("%d gathers, extra output %q; want 3 gathers for 3 newlines", r.in.gathers(), extra)
	}
}

func TestInputNewlineThenEOFStillGathers(t *testing.T) {
	// "echo | hap-monitor -config x" gathers once and exits.
	cfg, sink, _ := load(t, oneInput)
	var out strings.Builder
	err := RunInput(context.Background(), cfg, InputOptions{}, strings.NewReader("\n"), &out, sink)
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(out.String()); len(got) != 1 || !strings.HasPrefix(got[0], "count,src=a n=1i ") {
		t.Errorf("output %q, want one metric", out.String())
	}
}

func TestInputCoalescesTriggersDuringAGather(t *testing.T) {
	started := make(chan int, 10)
	gate := make(chan struct{})
	triggers := make(chan os.Signal, 1)
	r := startInput(t, oneInput, InputOptions{Triggers: triggers}, func(c *countInput) {
		c.started, c.gate = started, gate
	})
	r.stdin.ch <- "\n"
	if n := <-started; n != 1 {
		t.Fatalf("first gather is number %d", n)
	}
	// While gather 1 runs: five newlines in three reads and a signal.
	r.stdin.ch <- "\n\n"
	r.stdin.ch <- "\n"
	r.stdin.ch <- "\n\n"
	triggers <- syscall.SIGHUP
	r.stdin.ch <- "no newline" // returns once the previous chunk is handled
	gate <- struct{}{}
	r.line(t)
	if n := <-started; n != 2 {
		t.Fatalf("second gather is number %d", n)
	}
	gate <- struct{}{}
	r.line(t)
	close(r.stdin.ch)
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	if got := r.in.gathers(); got != 2 {
		t.Errorf("%d gathers; want 2: the triggers that came during gather 1 fold into one", got)
	}
}

func TestInputSurvivesAndGathersOnSIGHUPAndSIGUSR(t *testing.T) {
	// As hap-monitor's main sets them up for the execd input.
	_, triggers, release := HandleSignals(context.Background(), CatchSignals(), true, logger.New(logger.NewSink(io.Discard, telegraf.Error), ""))
	defer release()
	r := startInput(t, oneInput, InputOptions{Triggers: triggers}, nil)
	for i, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2} {
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		want := "n=" + string(rune('1'+i)) + "i"
		if l := r.line(t); !strings.Contains(l, want) {
			t.Fatalf("after %v got %q, want %s", sig, l, want)
		}
	}
	close(r.stdin.ch)
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
}

func TestInputPollInterval(t *testing.T) {
	r := startInput(t, oneInput, InputOptions{Clock: true, Interval: 10 * time.Millisecond}, nil)
	for _, want := range []string{"n=1i", "n=2i", "n=3i"} {
		if l := r.line(t); !strings.Contains(l, want) {
			t.Fatalf("got %q, want %s", l, want)
		}
	}
	close(r.stdin.ch)
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
}

func TestInputCancelFinishesTheGatherInFlight(t *testing.T) {
	started := make(chan int, 10)
	gate := make(chan struct{})
	r := startInput(t, oneInput, InputOptions{}, func(c *countInput) { c.started, c.gate = started, gate })
	r.stdin.ch <- "\n"
	<-started
	r.cancel() // SIGTERM
	close(gate)
	if l := r.line(t); !strings.Contains(l, "n=1i") {
		t.Errorf("the gather in flight wrote %q", l)
	}
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	if r.in.gathers() != 1 {
		t.Errorf("%d gathers after cancel, want 1", r.in.gathers())
	}
}

func TestInputErrorsAreLoggedAndTheRunGoesOn(t *testing.T) {
	r := startInput(t, oneInput+"  fail_every = 2\n[[inputs.shim_count]]\n  name = \"b\"\n  fail_only = true\n", InputOptions{}, nil)
	for range 3 {
		r.stdin.ch <- "\n"
		r.line(t) // only a's metric: b fails every time
	}
	close(r.stdin.ch)
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	logs := r.logs.String()
	for _, want := range []string{
		"E! [inputs.shim_count] gather 2 of a failed\n",
		"E! [inputs.shim_count] socket b: connection refused\n",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Count(logs, "socket b: connection refused") != 3 {
		t.Errorf("want b's error logged on each of 3 gathers:\n%s", logs)
	}
}

func TestInputSectionAndGlobalTagsNoHost(t *testing.T) {
	cfg, sink, _ := load(t, "[global_tags]\n  dc = \"gva\"\n"+oneInput+"  [inputs.shim_count.tags]\n    role = \"edge\"\n")
	var out strings.Builder
	if err := RunInput(context.Background(), cfg, InputOptions{}, strings.NewReader("\n"), &out, sink); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "count,dc=gva,role=edge,src=a n=1i ") {
		t.Errorf("got %q: want the section's and global tags and no host (Telegraf adds it)", out.String())
	}
}
