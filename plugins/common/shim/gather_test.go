package shim

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
)

// TestGatherHandsOverEverythingInOrder: inputs adding from several
// goroutines at once, to an emit that now and then takes its time (an
// output waiting for room), get every metric through exactly once, each
// goroutine's in the order it added them; emit is never called twice at
// once.
func TestGatherHandsOverEverythingInOrder(t *testing.T) {
	const n = 3000
	var conf string
	for _, name := range []string{"a", "b", "c"} {
		conf += fmt.Sprintf("[[inputs.shim_burst]]\n  name = %q\n  n = %d\n  goroutines = 4\n", name, n)
	}
	cfg, logs, _ := load(t, conf)
	tags, err := SharedTags(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	g := newGatherer(cfg, logs, tags)
	for gather := range 3 {
		next := map[string]int64{} // src/g -> the next i expected
		inEmit, count := false, 0
		errs := g.gather(func(m telegraf.Metric) {
			if inEmit {
				t.Fatal("emit called while another call runs")
			}
			inEmit = true
			defer func() { inEmit = false }()
			count++
			if count%500 == 0 {
				time.Sleep(2 * time.Millisecond)
			}
			key := m.Tags()["src"] + "/" + m.Tags()["g"]
			i, _ := m.GetField("i")
			if _, ok := next[key]; !ok {
				first, err := strconv.ParseInt(m.Tags()["g"], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				next[key] = first // goroutine g adds g, g+4, ...
			}
			if i.(int64) != next[key] {
				t.Fatalf("gather %d: %s gave i=%v, want %d", gather, key, i, next[key])
			}
			next[key] += 4
		})
		if errs != 0 || count != 3*n {
			t.Fatalf("gather %d: %d metrics, %d errors; want %d, 0", gather, count, errs, 3*n)
		}
	}
}
