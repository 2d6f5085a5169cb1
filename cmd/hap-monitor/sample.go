package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/plugins/outputs"
)

const sampleHeader = `# hap-monitor configuration, in Telegraf's syntax.
#
# What runs follows from the sections present:
#   [[inputs.haproxy]] only           Telegraf execd input (line protocol on stdout)
#   [[outputs.graphite_statsd]] only  Telegraf execd output (line protocol on stdin)
#   both                              pipeline: gather and deliver (-once for cron)
#
# Keep this file outside Telegraf's config directory: Telegraf would not know
# these sections.

## Settings of the whole process: Telegraf's [agent] table. Every key of
## Telegraf's is accepted; those below mean something here.
# [agent]
#   ## Time between gathers of each input (an input's own interval wins;
#   ## -poll_interval replaces both), aligned on multiples of it.
#   interval = "10s"
#   round_interval = true
#   ## Random delay up to collection_jitter before each gather, and a fixed
#   ## shift of every gather.
#   collection_jitter = "0s"
#   collection_offset = "0s"
#   ## Timestamps are rounded to this; "0s" means by the interval, at most 1s.
#   precision = "0s"
#   ## Most metrics handed to an output at once, and each output's default
#   ## buffer size.
#   metric_batch_size = 1000
#   metric_buffer_limit = 20000
#   ## How often an output retries what it holds undelivered (plus up to
#   ## flush_jitter); in the execd output, also the longest a metric waits
#   ## for its batch to fill when an output has no buffer of its own.
#   flush_interval = "10s"
#   flush_jitter = "0s"
#   ## Pipeline and -test: the host tag. Default: the short host name (the
#   ## first label of the FQDN), as the original HAP-Monitor.
#   hostname = ""
#   ## Leave the host tag out.
#   omit_hostname = false
#   ## Logging: debug messages too, errors only, or a file instead of stderr.
#   debug = false
#   quiet = false
#   logfile = ""

## Tags added to every metric gathered (unless the metric has them already).
# [global_tags]
#   dc = "gva"

`

// sampleConfigText returns the sample configuration of the named plugins
// ("inputs.haproxy", "outputs.graphite_statsd"), or of every plugin with
// the process-wide settings when names is empty.
func sampleConfigText(names []string) (string, error) {
	var b strings.Builder
	if len(names) == 0 {
		b.WriteString(sampleHeader)
		for _, name := range sortedNames(inputs.Inputs) {
			names = append(names, "inputs."+name)
		}
		for _, name := range sortedNames(outputs.Outputs) {
			names = append(names, "outputs."+name)
		}
	}
	for i, full := range names {
		kind, name, _ := strings.Cut(full, ".")
		var text string
		switch kind {
		case "inputs":
			if c, ok := inputs.Inputs[name]; ok {
				text = c().SampleConfig()
			}
		case "outputs":
			if c, ok := outputs.Outputs[name]; ok {
				text = c().SampleConfig()
			}
		}
		if text == "" {
			return "", fmt.Errorf("unknown plugin %q (known: %s)", full, strings.Join(known(), ", "))
		}
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(text)
	}
	return b.String(), nil
}

func known() []string {
	var all []string
	for _, n := range sortedNames(inputs.Inputs) {
		all = append(all, "inputs."+n)
	}
	for _, n := range sortedNames(outputs.Outputs) {
		all = append(all, "outputs."+n)
	}
	return all
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
