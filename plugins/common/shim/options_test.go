package shim

import (
	"context"
	"sort"
	"strings"
	"testing"
)

// TestInputAndOutputOptionsInTelegrafsOrder checks the order Telegraf's
// agent applies a section's options in: tagpass sees the metric as the
// input made it (not the section's or global tags), the section's tags
// never replace the input's own, taginclude and fieldexclude apply after
// tagging, and an output selects, trims and renames what it is given.
func TestInputAndOutputOptionsInTelegrafsOrder(t *testing.T) {
	cfg, sink, _ := load(t, `
[agent]
  hostname = "lb1"
[global_tags]
  dc = "gva"
[[inputs.shim_count]]
  name = "a"
  name_prefix = "lb_"
  [inputs.shim_count.tags]
    src = "replaced?"
    role = "edge"
  [inputs.shim_count.tagpass]
    src = ["a"]
[[inputs.shim_count]]
  name = "b"
  [inputs.shim_count.tagpass]
    dc = ["gva"]
[[inputs.shim_count]]
  name = "c"
  name_override = "gone"
  fieldexclude = ["n"]
[[outputs.shim_record]]
  namedrop = ["count"]
  name_suffix = "_out"
  taginclude = ["src", "role"]
[[outputs.shim_record]]
`)
	if err := RunPipeline(context.Background(), cfg, PipelineOptions{Once: true}, sink); err != nil {
		t.Fatal(err)
	}
	describe := func(i int) []string {
		var got []string
		for _, m := range cfg.Outputs[i].Output.(*recordOutput).metrics() {
			var tags []string
			for _, tg := range m.TagList() {
				tags = append(tags, tg.Key+"="+tg.Value)
			}
			got = append(got, m.Name()+" "+strings.Join(tags, ","))
		}
		sort.Strings(got)
		return got
	}
	// b: tagpass on dc sees no dc tag yet, as in Telegraf, so b is dropped;
	// c: every field excluded, so the metric is dropped.
	want := []string{"lb_count dc=gva,host=lb1,role=edge,src=a"}
	if got := describe(1); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("second output got %q, want %q", got, want)
	}
	want = []string{"lb_count_out role=edge,src=a"}
	if got := describe(0); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("first output got %q, want %q", got, want)
	}
}

// TestEachInputOnItsOwnInterval runs a pipeline whose inputs have
// different intervals and checks that each gathers at its own pace.
func TestEachInputOnItsOwnInterval(t *testing.T) {
	cfg, sink, _ := load(t, `
[agent]
  round_interval = false
[[inputs.shim_count]]
  name = "fast"
  interval = "20ms"
[[inputs.shim_count]]
  name = "slow"
  interval = "1h"
[[outputs.shim_record]]
`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunPipeline(ctx, cfg, PipelineOptions{}, sink) }()
	fast := cfg.Inputs[0].Input.(*countInput)
	slow := cfg.Inputs[1].Input.(*countInput)
	waitFor(t, "five gathers of the fast input", func() bool { return fast.gathers() >= 5 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Unaligned, the first gather of each input is at once; the slow one's
	// second is an hour away.
	if n := slow.gathers(); n != 1 {
		t.Errorf("the 1h input gathered %d times, want 1", n)
	}
}
