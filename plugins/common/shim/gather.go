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
// what they return as Telegraf's agent would: the section's tags always,
// the shared tags (global tags, host) unless the metric already has them.
type gatherer struct {
	inputs []*inputState
	shared map[string]string
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
		acc := &Accumulator{OnError: func(err error) { log.Error(err) }}
		g.inputs = append(g.inputs, &inputState{cfg: in, log: log, acc: acc})
	}
	return g
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

// gather runs every input concurrently and returns their metrics, tagged,
// in the configuration's order, and the number of errors they reported
// (each already logged).
func (g *gatherer) gather() ([]telegraf.Metric, int) {
	type result struct {
		metrics []telegraf.Metric
		errs    int
	}
	results := make([]result, len(g.inputs))
	var wg sync.WaitGroup
	for i, in := range g.inputs {
		wg.Go(func() {
			if err := in.cfg.Input.Gather(in.acc); err != nil {
				in.acc.AddError(err)
			}
			metrics, errs := in.acc.Drain()
			for _, m := range metrics {
				g.tag(m, in.cfg.Tags)
			}
			results[i] = result{metrics, len(errs)}
		})
	}
	wg.Wait()
	var all []telegraf.Metric
	errs := 0
	for _, r := range results {
		all = append(all, r.metrics...)
		errs += r.errs
	}
	return all, errs
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
