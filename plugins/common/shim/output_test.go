package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

const recordConf = "[[outputs.shim_record]]\n"

func runOutput(t *testing.T, conf string, opts OutputOptions, stdin io.Reader) (*recordOutput, string, error) {
	t.Helper()
	cfg, sink, logs := load(t, conf)
	err := RunOutput(context.Background(), cfg, opts, stdin, sink)
	var rec *recordOutput
	switch o := cfg.Outputs[0].Output.(type) {
	case *recordOutput:
		rec = o
	case *bufferedOutput:
		rec = &o.recordOutput
	}
	if !rec.closed {
		t.Error("output not closed")
	}
	return rec, logs.String(), err
}

func TestOutputSkipsBadLinesNamingThemAndDeliversTheRest(t *testing.T) {
	long := "big,k=v field=\"" + strings.Repeat("x", 64*1024) + "\" 4000000000\n"
	input := "cpu,host=a usage=1.5 1000000000\n" + // line 1
		"cpu,host=a usage= 2000000000\n" + // 2: no value
		"\n" + // 3: empty
		"# a comment\n" + // 4
		"mem,host=a used=42i,free=7u,ok=true,name=\"x y\" 3000000000\n" + // 5
		long + // 6: 64 KB, valid
		"bad\xff\xfe,host=a v=1 5000000000\n" + // 7: invalid UTF-8
		"cpu,host=a usage=3 notatime\n" + // 8
		"cpu usage=4 99999999999999999999999\n" + // 9: timestamp out of range
		"cpu,host=b usage=5 6000000000" // 10: no final newline: possibly cut, skipped
	rec, logs, err := runOutput(t, recordConf, OutputOptions{}, strings.NewReader(input))
	if err != nil {
		t.Fatalf("RunOutput: %v (bad lines are not delivery failures)", err)
	}
	var got []string
	for _, m := range rec.metrics() {
		got = append(got, fmt.Sprintf("%s %d %d", m.Name(), len(m.FieldList()), m.Time().UnixNano()))
	}
	want := []string{"cpu 1 1000000000", "mem 4 3000000000", "big 1 4000000000"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("delivered %q, want %q", got, want)
	}
	for _, n := range []int{2, 7, 8, 9, 10} {
		if !regexp.MustCompile(fmt.Sprintf("(?m)^W! line %d: .+$", n)).MatchString(logs) {
			t.Errorf("no warning for line %d in:\n%s", n, logs)
		}
	}
	if c := strings.Count(logs, "W! line "); c != 5 {
		t.Errorf("%d line warnings, want 5:\n%s", c, logs)
	}
}

func TestOutputSkipsALineOverTheLimit(t *testing.T) {
	input := "a v=1 1\n" + "b v=\"" + strings.Repeat("y", MaxLineBytes) + "\" 2\n" + "c v=3 3\n"
	rec, logs, err := runOutput(t, recordConf, OutputOptions{}, strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rec.metrics()); n != 2 {
		t.Errorf("%d metrics delivered, want a and c", n)
	}
	if !strings.Contains(logs, "W! line 2: longer than") {
		t.Errorf("logs: %s", logs)
	}
}

func TestOutputWritesInBatches(t *testing.T) {
	var in strings.Builder
	for i := range 10 {
		fmt.Fprintf(&in, "m v=%di %d\n", i, i+1)
	}
	rec, _, err := runOutput(t, recordConf, OutputOptions{BatchSize: 3, FlushInterval: time.Hour}, strings.NewReader(in.String()))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(rec.batchSizes()); got != "[3 3 3 1]" {
		t.Errorf("batch sizes %s, want [3 3 3 1]", got)
	}
	for i, m := range rec.metrics() {
		if v, _ := m.GetField("v"); v != int64(i) {
			t.Errorf("metric %d has v=%v: order lost", i, v)
		}
	}
}

func TestOutputFlushesAPartialBatchOnTheInterval(t *testing.T) {
	cfg, sink, _ := load(t, recordConf)
	rec := cfg.Outputs[0].Output.(*recordOutput)
	rec.wrote = make(chan struct{}, 1)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- RunOutput(context.Background(), cfg, OutputOptions{BatchSize: 1000, FlushInterval: 20 * time.Millisecond}, pr, sink)
	}()
	if _, err := io.WriteString(pw, "a v=1 1\nb v=2 2\n"); err != nil {
		t.Fatal(err)
	}
	// stdin stays open: only the flush interval can deliver these two.
	waitFor(t, "two metrics written before EOF", func() bool { return len(rec.metrics()) == 2 })
	_ = pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestOutputExitStatusFollowsUndelivered(t *testing.T) {
	t.Run("undeliverer holding metrics at close", func(t *testing.T) {
		_, logs, err := runOutput(t, "[[outputs.shim_buffered]]\n  buffered = true\n  pending = 1000\n", OutputOptions{}, strings.NewReader("a v=1 1\n"))
		if !errors.Is(err, ErrUndelivered) {
			t.Errorf("err = %v, want ErrUndelivered", err)
		}
		// The output says what failed; the run's last line (err) counts.
		if err == nil || err.Error() != "1000 metrics not delivered" {
			t.Errorf("err = %v, want 1000 metrics not delivered", err)
		}
		if strings.Contains(logs, "E! [outputs.shim_buffered]") {
			t.Errorf("a second error line for the output's failure: %s", logs)
		}
	})
	t.Run("undeliverer that delivered everything", func(t *testing.T) {
		if _, _, err := runOutput(t, "[[outputs.shim_buffered]]\n", OutputOptions{}, strings.NewReader("a v=1 1\n")); err != nil {
			t.Errorf("err = %v, want nil", err)
		}
	})
	t.Run("plain output whose Write fails", func(t *testing.T) {
		_, logs, err := runOutput(t, "[[outputs.shim_record]]\n  fail_writes = true\n", OutputOptions{}, strings.NewReader("a v=1 1\nb v=2 2\n"))
		if !errors.Is(err, ErrUndelivered) || !strings.HasPrefix(err.Error(), "2 ") {
			t.Errorf("err = %v, want 2 undelivered", err)
		}
		if !strings.Contains(logs, "E! [outputs.shim_record] writing 2 metrics: connection refused") {
			t.Errorf("logs: %s", logs)
		}
	})
}

func TestOutputAsksABufferingOutputToRetry(t *testing.T) {
	cfg, sink, _ := load(t, "[[outputs.shim_buffered]]\n  pending = 3\n  flush_interval = \"5ms\"\n")
	out := cfg.Outputs[0].Output.(*bufferedOutput)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- RunOutput(context.Background(), cfg, OutputOptions{}, pr, sink)
	}()
	// Nothing arrives: every flush tick is a retry until nothing is pending.
	waitFor(t, "retries emptying the buffer", func() bool { return out.Undelivered() == 0 })
	_ = pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	if out.nilWrites != 3 {
		t.Errorf("%d Deliver calls, want 3 (one per pending metric, none once empty)", out.nilWrites)
	}
}

func TestOutputHundredThousandLinesWithSomeMalformed(t *testing.T) {
	pr, pw := io.Pipe()
	bad := map[int]bool{17: true, 50000: true, 50001: true, 99999: true}
	go func() {
		w := &strings.Builder{}
		for n := 1; n <= 100000; n++ {
			if bad[n] {
				fmt.Fprintf(w, "haproxy,proxy=p%d scur= %d\n", n%7, n)
			} else {
				fmt.Fprintf(w, "haproxy,proxy=p%d scur=%di %d\n", n%7, n, int64(n)*1e9)
			}
			if w.Len() > 32*1024 {
				_, _ = io.WriteString(pw, w.String())
				w.Reset()
			}
		}
		_, _ = io.WriteString(pw, w.String())
		_ = pw.Close()
	}()
	rec, logs, err := runOutput(t, recordConf, OutputOptions{}, pr)
	if err != nil {
		t.Fatal(err)
	}
	ms := rec.metrics()
	if len(ms) != 100000-len(bad) {
		t.Fatalf("%d metrics delivered, want %d", len(ms), 100000-len(bad))
	}
	seen := make(map[int64]bool, len(ms))
	for _, m := range ms {
		v, _ := m.GetField("scur")
		seen[v.(int64)] = true
	}
	for n := 1; n <= 100000; n++ {
		if !bad[n] && !seen[int64(n)] {
			t.Fatalf("line %d not delivered", n)
		}
	}
	for n := range bad {
		if !strings.Contains(logs, fmt.Sprintf("W! line %d: ", n)) {
			t.Errorf("line %d not reported", n)
		}
	}
}
