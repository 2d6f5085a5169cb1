// Package contract holds what hap-monitor's parts promise each other
// beyond Telegraf's interfaces: the optional interfaces the shim and the
// config loader look for on a plugin, the release of a metric's storage,
// and the default Graphite paths the output writes and the input checks
// for collisions. Each implementation asserts at compile time that it
// implements what it means to (var _ contract.Buffered = (*X)(nil)), so
// a renamed method fails the build instead of changing the behaviour.
//
// # Who owns a metric
//
// A metric is owned by one holder at a time, and handed on, never shared:
//
//   - the input that makes it, until it hands it to the accumulator;
//   - then the shim: in an execd input, until the metric is written to
//     stdout; in a pipeline, until it hands the metric to the outputs. An
//     output that takes it owns it; one that does not (its filters leave
//     it out) leaves it to the shim. When several outputs take it, every
//     one but the last gets a copy;
//   - an output: a Buffered output owns what it was given by Add until the
//     metric is delivered, spooled or dropped. An output that is not
//     Buffered (Telegraf's own, in tests) never releases: the storage is
//     left to the garbage collector.
//
// The last holder calls Release (Release below: a no-op for metrics
// without storage to give back). The haproxy input's rows share parse
// arenas: a released row's storage is reused by a later gather, so a
// metric must not be read after it is released, nor released twice.
package contract

import "github.com/influxdata/telegraf"

// Releaser is a metric whose storage can be given back once its last
// holder is done with it (the haproxy input's rows).
type Releaser interface {
	Release()
}

// Release gives m's storage back if it has any: its last holder calls it.
func Release(m telegraf.Metric) {
	if r, ok := m.(Releaser); ok {
		r.Release()
	}
}

// ReleaseAll releases each of ms.
func ReleaseAll(ms []telegraf.Metric) {
	for _, m := range ms {
		Release(m)
	}
}

// Buffered is an output that keeps its own buffer and delivers from it,
// so that handing metrics over never waits on the network:
//
//   - Add takes metrics without waiting on a server (what overflows the
//     buffer the output spools or counts itself) and owns them from then;
//   - Ready receives a value after Add: there is something to deliver;
//   - Deliver delivers what is buffered, for as long as a server takes
//     it; it reports delivery failures itself and keeps what failed for
//     the next try;
//   - Close (telegraf.Output's) delivers what it can and spools the rest;
//   - Undelivered then tells how many metrics of this run were not
//     delivered (spooled or lost).
//
// The shim calls Deliver after Ready and every flush_interval. A
// telegraf.Output's Write with no metrics does the same, for hosts that
// only know Telegraf's interface.
type Buffered interface {
	telegraf.Output
	Add([]telegraf.Metric)
	Ready() <-chan struct{}
	Deliver()
	Undelivered() int
}

// Interrupter is an output whose delivery can be asked to end soon: the
// shim calls Interrupt when the process is asked to stop (SIGTERM), then
// Close, which delivers for a bounded time more.
type Interrupter interface {
	Interrupt()
}

// BufferLimiter is an output that keeps its own buffer: the [agent]
// metric_buffer_limit is handed to it before its section is read, as the
// default of its own metric_buffer_limit.
type BufferLimiter interface {
	SetMetricBufferLimit(n int)
}

// FieldSelector is an input that can leave fields out while it parses:
// the section's fieldinclude and fieldexclude (and the older fieldpass and
// fielddrop) are handed to it before Init, instead of being applied to
// every metric afterwards. The result is the same.
type FieldSelector interface {
	SelectFields(include, exclude []string)
}
