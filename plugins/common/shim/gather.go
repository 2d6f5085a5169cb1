package shim

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// gatherer runs every configured input once per call of gather and tags
// what they add as Telegraf's agent would: the section's tags always, the
// shared tags (global tags, host) unless the metric already has them. The
// metrics stream: each is handed on as soon as its input adds it.
type gatherer struct {
	inputs []*inputState
	shared map[string]string

	mu      sync.Mutex
	emit    func(telegraf.Metric) // the running gather's; nil between gathers
	pending []telegraf.Metric     // added between gathers (service inputs)
}

type inputState struct {
	cfg *config.Input
	log telegraf.Logger
	acc *Accumulator
}

func newGatherer(cfg *config.Config, logs *logger.Sink, shared map[string]string) *gatherer {
	g := &gatherer{shared: shared}
	for _, in := range cfg.Inputs {
		log := logger.New(logs, in.ID())
		acc := &Accumulator{
			OnError:  func(err error) { log.Error(err) },
			OnMetric: func(m telegraf.Metric) { g.hand(m, in.Tags) },
		}
		g.inputs = append(g.inputs, &inputState{cfg: in, log: log, acc: acc})
	}
	return g
}

// hand tags m and passes it to the running gather, one metric at a time
// whatever the number of inputs.
func (g *gatherer) hand(m telegraf.Metric, section map[string]string) {
	g.tag(m, section)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.emit == nil {
		g.pending = append(g.pending, m)
		return
	}
	g.emit(m)
}

// start starts the service inputs, if any.
func (g *gatherer) start() error {
	for _, in := range g.inputs {
		if s, ok := in.cfg.Input.(telegraf.ServiceInput); ok {
			if err := s.Start(in.acc); err != nil {
				return fmt.Errorf("starting %s: %w", in.cfg.ID(), err)
			}
		}
	}
	return nil
}

// stop stops the service inputs, if any.
func (g *gatherer) stop() {
	for _, in := range g.inputs {
		if s, ok := in.cfg.Input.(telegraf.ServiceInput); ok {
			s.Stop()
		}
	}
}

// gather runs every input concurrently, hands each metric to emit as it
// comes (never two calls at once), and returns the number of errors the
// inputs reported (each already logged).
func (g *gatherer) gather(emit func(telegraf.Metric)) int {
	g.mu.Lock()
	for _, m := range g.pending {
		emit(m)
	}
	g.pending, g.emit = nil, emit
	g.mu.Unlock()

	errs := make([]int, len(g.inputs))
	var wg sync.WaitGroup
	for i, in := range g.inputs {
		wg.Go(func() {
			if err := in.cfg.Input.Gather(in.acc); err != nil {
				in.acc.AddError(err)
			}
			_, e := in.acc.Drain()
			errs[i] = len(e)
		})
	}
	wg.Wait()

	g.mu.Lock()
	g.emit = nil
	g.mu.Unlock()
	total := 0
	for _, n := range errs {
		total += n
	}
	return total
}

func (g *gatherer) tag(m telegraf.Metric, section map[string]string) {
	for k, v := range section {
		m.AddTag(k, v)
	}
	for k, v := range g.shared {
		if !m.HasTag(k) {
			m.AddTag(k, v)
		}
	}
}

// SharedTags returns the tags added to every gathered metric: the
// config's [global_tags] and, when withHost is true, "host" (the short host
// name, or [agent] hostname) unless [agent] omit_hostname is set.
func SharedTags(cfg *config.Config, withHost bool) (map[string]string, error) {
	tags := make(map[string]string, len(cfg.GlobalTags)+1)
	for k, v := range cfg.GlobalTags {
		tags[k] = v
	}
	if !withHost || cfg.Agent.OmitHostname {
		return tags, nil
	}
	if _, ok := tags["host"]; ok {
		return tags, nil
	}
	host := cfg.Agent.Hostname
	if host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("reading the host name (set [agent] hostname): %w", err)
		}
		host = ShortHostname(h)
	}
	tags["host"] = host
	return tags, nil
}

// ShortHostname returns the first label of a host name, as the original
// HAP-Monitor put in its paths: "lb1" for "lb1.example.org".
func ShortHostname(h string) string {
	if i := strings.IndexByte(h, '.'); i > 0 {
		return h[:i]
	}
	return h
}
