package shim

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPipelineOnceDeliversWhatWorkedAndReportsTheRest(t *testing.T) {
	cfg, sink, logs := load(t, `
[agent]
  hostname = "lb1"
[global_tags]
  dc = "gva"
[[inputs.shim_count]]
  name = "good"
  [inputs.shim_count.tags]
    role = "edge"
[[inputs.shim_count]]
  name = "missing"
  fail_only = true
[[outputs.shim_record]]
`)
	err := RunPipeline(context.Background(), cfg, PipelineOptions{Once: true}, sink)
	if err == nil || !strings.Contains(err.Error(), "1 input error") {
		t.Errorf("err = %v, want the input error counted", err)
	}
	rec := cfg.Outputs[0].Output.(*recordOutput)
	ms := rec.metrics()
	if len(ms) != 1 {
		t.Fatalf("%d metrics delivered, want the good input's one", len(ms))
	}
	tags := ms[0].Tags()
	if tags["host"] != "lb1" || tags["dc"] != "gva" || tags["role"] != "edge" || tags["src"] != "good" {
		t.Errorf("tags %v", tags)
	}
	if !rec.closed {
		t.Error("output not closed")
	}
	if !strings.Contains(logs.String(), "E! [inputs.shim_count] socket missing: connection refused") {
		t.Errorf("logs: %s", logs)
	}
}

func TestPipelineOnceAllGood(t *testing.T) {
	cfg, sink, _ := load(t, "[agent]\n  omit_hostname = true\n"+oneInput+recordConf)
	if err := RunPipeline(context.Background(), cfg, PipelineOptions{Once: true}, sink); err != nil {
		t.Fatal(err)
	}
	ms := cfg.Outputs[0].Output.(*recordOutput).metrics()
	if len(ms) != 1 || ms[0].HasTag("host") {
		t.Errorf("metrics %v: want one, without host (omit_hostname)", ms)
	}
}

func TestPipelineDefaultHostIsTheShortHostName(t *testing.T) {
	cfg, sink, _ := load(t, oneInput+recordConf)
	if err := RunPipeline(context.Background(), cfg, PipelineOptions{Once: true}, sink); err != nil {
		t.Fatal(err)
	}
	host, _ := cfg.Outputs[0].Output.(*recordOutput).metrics()[0].GetTag("host")
	if host == "" || strings.Contains(host, ".") {
		t.Errorf("host tag %q, want the short host name", host)
	}
}

func TestShortHostname(t *testing.T) {
	for in, want := range map[string]string{"lb1.cern.ch": "lb1", "lb1": "lb1", "": ""} {
		if got := ShortHostname(in); got != want {
			t.Errorf("ShortHostname(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPipelineOnceUndelivered(t *testing.T) {
	cfg, sink, _ := load(t, oneInput+"[[outputs.shim_record]]\n  fail_writes = true\n")
	err := RunPipeline(context.Background(), cfg, PipelineOptions{Once: true}, sink)
	if !errors.Is(err, ErrUndelivered) {
		t.Errorf("err = %v, want ErrUndelivered", err)
	}
}

func TestPipelineRunsEveryIntervalUntilCancelled(t *testing.T) {
	cfg, sink, _ := load(t, oneInput+recordConf)
	rec := cfg.Outputs[0].Output.(*recordOutput)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunPipeline(ctx, cfg, PipelineOptions{Interval: 10 * time.Millisecond}, sink) }()
	waitFor(t, "three gathers delivered", func() bool { return len(rec.metrics()) >= 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i, m := range rec.metrics() {
		if v, _ := m.GetField("n"); v != int64(i+1) {
			t.Errorf("delivery %d holds gather %v", i+1, v)
		}
	}
	if !rec.closed {
		t.Error("output not closed")
	}
}

func TestGatherOnceForTestMode(t *testing.T) {
	cfg, sink, _ := load(t, "[agent]\n  hostname = \"lb1\"\n"+oneInput+recordConf)
	var out strings.Builder
	if err := GatherOnce(cfg, &out, sink); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "count,host=lb1,src=a n=1i ") {
		t.Errorf("got %q", out.String())
	}
	if n := len(cfg.Outputs[0].Output.(*recordOutput).metrics()); n != 0 {
		t.Errorf("-test delivered %d metrics", n)
	}
}
