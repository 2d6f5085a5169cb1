package shim

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/plugins/outputs"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/contract"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// countInput emits one metric per gather, "count,src=NAME n=<gather number>".
// With a gate, each gather announces itself on started and waits for the
// gate; with FailEvery > 0, every FailEvery-th gather also reports an error.
type countInput struct {
	Name      string `toml:"name"`
	FailEvery int    `toml:"fail_every"`
	FailOnly  bool   `toml:"fail_only"`

	mu      sync.Mutex
	n       int
	started chan int
	gate    chan struct{}
}

func (*countInput) SampleConfig() string { return "" }

func (c *countInput) Gather(acc telegraf.Accumulator) error {
	c.mu.Lock()
	c.n++
	n := c.n
	c.mu.Unlock()
	if c.started != nil {
		c.started <- n
	}
	if c.gate != nil {
		<-c.gate
	}
	if c.FailOnly {
		return fmt.Errorf("socket %s: connection refused", c.Name)
	}
	acc.AddFields("count", map[string]any{"n": int64(n)}, map[string]string{"src": c.Name})
	if c.FailEvery > 0 && n%c.FailEvery == 0 {
		acc.AddError(fmt.Errorf("gather %d of %s failed", n, c.Name))
	}
	return nil
}

func (c *countInput) gathers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// recordOutput keeps what it is given. FailWrites makes every Write fail.
// Pending metrics are held undelivered; each Write(nil) (or Deliver, for
// a bufferedOutput) delivers one, unless Buffered says they are stuck for
// good.
type recordOutput struct {
	FailWrites bool `toml:"fail_writes"`
	Buffered   bool `toml:"buffered"`
	Pending    int  `toml:"pending"`

	mu        sync.Mutex
	batches   [][]telegraf.Metric
	nilWrites int
	closed    bool
	wrote     chan struct{}
}

func (*recordOutput) SampleConfig() string { return "" }
func (*recordOutput) Connect() error       { return nil }

func (r *recordOutput) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return nil
}

func (r *recordOutput) Write(ms []telegraf.Metric) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ms == nil {
		r.nilWrites++
		if r.Pending > 0 && !r.Buffered {
			r.Pending--
		}
		return nil
	}
	if r.FailWrites {
		return errors.New("connection refused")
	}
	r.batches = append(r.batches, ms)
	if r.wrote != nil {
		select {
		case r.wrote <- struct{}{}:
		default:
		}
	}
	return nil
}

func (r *recordOutput) metrics() []telegraf.Metric {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []telegraf.Metric
	for _, b := range r.batches {
		all = append(all, b...)
	}
	return all
}

func (r *recordOutput) batchSizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sizes []int
	for _, b := range r.batches {
		sizes = append(sizes, len(b))
	}
	return sizes
}

// bufferedOutput is a recordOutput that keeps what Add gives it and
// reports Pending metrics as still held: each Deliver delivers one.
type bufferedOutput struct {
	recordOutput
	ready chan struct{}
}

var _ contract.Buffered = (*bufferedOutput)(nil)

func (b *bufferedOutput) Deliver() { _ = b.Write(nil) }

func (b *bufferedOutput) Add(ms []telegraf.Metric) {
	b.mu.Lock()
	b.batches = append(b.batches, ms)
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

func (b *bufferedOutput) Ready() <-chan struct{} { return b.ready }

func (b *bufferedOutput) Undelivered() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Pending
}

// burstInput adds N metrics per gather, "burst,src=NAME i=<0..N-1>", from
// Goroutines goroutines at once, each its own share in order.
type burstInput struct {
	Name       string `toml:"name"`
	N          int    `toml:"n"`
	Goroutines int    `toml:"goroutines"`
}

func (*burstInput) SampleConfig() string { return "" }

func (b *burstInput) Gather(acc telegraf.Accumulator) error {
	var wg sync.WaitGroup
	for g := range max(b.Goroutines, 1) {
		wg.Go(func() {
			for i := g; i < b.N; i += max(b.Goroutines, 1) {
				acc.AddFields("burst", map[string]any{"i": int64(i)}, map[string]string{"src": b.Name, "g": fmt.Sprint(g)})
			}
		})
	}
	wg.Wait()
	return nil
}

func init() {
	inputs.Add("shim_burst", func() telegraf.Input { return &burstInput{} })
	inputs.Add("shim_count", func() telegraf.Input { return &countInput{} })
	outputs.Add("shim_record", func() telegraf.Output { return &recordOutput{} })
	outputs.Add("shim_buffered", func() telegraf.Output { return &bufferedOutput{ready: make(chan struct{}, 1)} })
}

// load parses a config whose plugins log to the returned buffer.
func load(t *testing.T, text string) (*config.Config, *logger.Sink, *testbed.SyncBuffer) {
	t.Helper()
	logs := &testbed.SyncBuffer{}
	sink := logger.NewSink(logs, telegraf.Info)
	cfg, err := config.Parse([]byte(text), "test.conf", sink)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, sink, logs
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func lines(s string) []string {
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}
