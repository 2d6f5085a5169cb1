// Package config loads hap-monitor's TOML configuration: Telegraf's syntax
// for [[inputs.NAME]] and [[outputs.NAME]] sections, plus [agent] and
// [global_tags]. Plugins come from Telegraf's registries (inputs.Inputs,
// outputs.Outputs), so any plugin registered there can be configured. A key
// no plugin reads is an error naming the key and its line, never silence.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/plugins/outputs"

	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// Agent holds the settings that apply to the whole process.
type Agent struct {
	// Hostname overrides the host tag; empty means the short host name.
	Hostname string `toml:"hostname"`
	// OmitHostname leaves the host tag out (Telegraf adds its own under execd).
	OmitHostname bool `toml:"omit_hostname"`
	// Interval is the gather interval in pipeline mode; the -poll_interval
	// flag overrides it.
	Interval Duration `toml:"interval"`
	// MetricBatchSize is the most metrics handed to an output in one Write
	// (execd output and pipeline modes); 0 means the default, 1000.
	MetricBatchSize int `toml:"metric_batch_size"`
	// FlushInterval is how long metrics read in execd output mode may wait
	// for a batch to fill before they are written anyway, and how often
	// outputs holding undelivered metrics are asked to retry; 0 means the
	// default, 1s.
	FlushInterval Duration `toml:"flush_interval"`
}

// Defaults of the [agent] options left at zero.
const (
	DefaultInterval        = time.Second
	DefaultMetricBatchSize = 1000
	DefaultFlushInterval   = time.Second
)

// BatchSize returns metric_batch_size, or its default.
func (a Agent) BatchSize() int {
	if a.MetricBatchSize > 0 {
		return a.MetricBatchSize
	}
	return DefaultMetricBatchSize
}

// Flush returns flush_interval, or its default.
func (a Agent) Flush() time.Duration {
	if a.FlushInterval > 0 {
		return time.Duration(a.FlushInterval)
	}
	return DefaultFlushInterval
}

// validate checks the [agent] options, naming the option and its line.
func (a Agent) validate(data []byte, source string) error {
	bad := func(key, msg string) error {
		return fmt.Errorf("%s:%d: [agent]: %s %s", source, keyLine(data, toml.Key{"agent", key}), key, msg)
	}
	switch {
	case a.Interval < 0:
		return bad("interval", "must not be negative")
	case a.MetricBatchSize < 0:
		return bad("metric_batch_size", "must not be negative")
	case a.FlushInterval < 0:
		return bad("flush_interval", "must not be negative")
	case strings.ContainsAny(a.Hostname, " \t\n,="):
		return bad("hostname", fmt.Sprintf("%q must not hold spaces, commas or '='", a.Hostname))
	}
	return nil
}

// Plugin is what both inputs and outputs carry besides their own options.
type Plugin struct {
	Kind  string            // "inputs" or "outputs"
	Name  string            // registry name, e.g. "haproxy"
	Alias string            // the section's alias option, if any
	Tags  map[string]string // the section's [inputs.NAME.tags] table
	Line  int               // line of the section header in the file
}

// ID names the plugin in logs: "inputs.haproxy" or "inputs.haproxy::alias".
func (p *Plugin) ID() string {
	if p.Alias != "" {
		return p.Kind + "." + p.Name + "::" + p.Alias
	}
	return p.Kind + "." + p.Name
}

// Input is one configured input plugin.
type Input struct {
	Plugin
	Input telegraf.Input
}

// Output is one configured output plugin.
type Output struct {
	Plugin
	Output telegraf.Output
}

// Config is a loaded, validated configuration.
type Config struct {
	Source     string // file name, for messages
	Agent      Agent
	GlobalTags map[string]string
	Inputs     []*Input
	Outputs    []*Output
}

// LoadFile reads and parses the file at path; see Parse.
func LoadFile(path string, logs *logger.Sink) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path, logs)
}

// file is the TOML document's shape. Plugin sections stay undecoded until
// the plugin's own struct is known.
type file struct {
	Agent      Agent                       `toml:"agent"`
	GlobalTags map[string]string           `toml:"global_tags"`
	Inputs     map[string][]toml.Primitive `toml:"inputs"`
	Outputs    map[string][]toml.Primitive `toml:"outputs"`
}

// common are the options every plugin section may hold besides its own.
type common struct {
	Alias string            `toml:"alias"`
	Tags  map[string]string `toml:"tags"`
}

// Parse decodes data (named source in messages), builds each plugin from the
// registries, gives it a logger writing to logs, and calls its Init. Every
// error names the source, the line and the key or plugin at fault.
func Parse(data []byte, source string, logs *logger.Sink) (*Config, error) {
	var f file
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			if perr.LastKey != "" {
				return nil, fmt.Errorf("%s:%d: %s: %s", source, perr.Position.Line, perr.LastKey, perr.Message)
			}
			return nil, fmt.Errorf("%s:%d: %s", source, perr.Position.Line, perr.Message)
		}
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	headers := sectionLines(data)
	cfg := &Config{Source: source, Agent: f.Agent, GlobalTags: f.GlobalTags}

	for _, name := range sortedKeys(f.Inputs) {
		creator, ok := inputs.Inputs[name]
		for i, prim := range f.Inputs[name] {
			line := headers.line("inputs."+name, i)
			if !ok {
				return nil, fmt.Errorf("%s:%d: unknown input plugin %q (known: %s)",
					source, line, name, strings.Join(sortedKeys(inputs.Inputs), ", "))
			}
			in := &Input{Plugin: Plugin{Kind: "inputs", Name: name, Line: line}, Input: creator()}
			if err := decodePlugin(md, prim, &in.Plugin, in.Input, data, source); err != nil {
				return nil, err
			}
			cfg.Inputs = append(cfg.Inputs, in)
		}
	}
	for _, name := range sortedKeys(f.Outputs) {
		creator, ok := outputs.Outputs[name]
		for i, prim := range f.Outputs[name] {
			line := headers.line("outputs."+name, i)
			if !ok {
				return nil, fmt.Errorf("%s:%d: unknown output plugin %q (known: %s)",
					source, line, name, strings.Join(sortedKeys(outputs.Outputs), ", "))
			}
			out := &Output{Plugin: Plugin{Kind: "outputs", Name: name, Line: line}, Output: creator()}
			if err := decodePlugin(md, prim, &out.Plugin, out.Output, data, source); err != nil {
				return nil, err
			}
			cfg.Outputs = append(cfg.Outputs, out)
		}
	}
	sort.SliceStable(cfg.Inputs, func(a, b int) bool { return cfg.Inputs[a].Line < cfg.Inputs[b].Line })
	sort.SliceStable(cfg.Outputs, func(a, b int) bool { return cfg.Outputs[a].Line < cfg.Outputs[b].Line })

	if keys := md.Undecoded(); len(keys) > 0 {
		return nil, unknownKeyError(data, source, keys[0])
	}
	if err := f.Agent.validate(data, source); err != nil {
		return nil, err
	}

	for _, in := range cfg.Inputs {
		if err := initPlugin(in.Input, &in.Plugin, logs, source); err != nil {
			return nil, err
		}
	}
	for _, out := range cfg.Outputs {
		if err := initPlugin(out.Output, &out.Plugin, logs, source); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

func decodePlugin(md toml.MetaData, prim toml.Primitive, p *Plugin, plugin any, data []byte, source string) error {
	var c common
	if err := md.PrimitiveDecode(prim, &c); err != nil {
		return fmt.Errorf("%s:%d: [[%s.%s]]: %w", source, p.Line, p.Kind, p.Name, err)
	}
	p.Alias, p.Tags = c.Alias, c.Tags
	if err := md.PrimitiveDecode(prim, plugin); err != nil {
		line := p.Line
		var perr toml.ParseError
		if errors.As(err, &perr) && perr.LastKey != "" {
			// The section's own lines are searched from its header on.
			key := strings.Split(perr.LastKey, ".")
			if l := keyLineFrom(data, p.Kind+"."+p.Name, p.Line, key[len(key)-1]); l > 0 {
				line = l
			}
		}
		return fmt.Errorf("%s:%d: [[%s.%s]]: %w", source, line, p.Kind, p.Name, cleanTOMLError(err))
	}
	return nil
}

// initPlugin attaches a logger and runs the plugin's Init, if it has one.
func initPlugin(plugin any, p *Plugin, logs *logger.Sink, source string) error {
	if logs != nil {
		AttachLogger(plugin, logger.New(logs, p.ID()))
	}
	if i, ok := plugin.(telegraf.Initializer); ok {
		if err := i.Init(); err != nil {
			return fmt.Errorf("%s:%d: [[%s.%s]]: %w", source, p.Line, p.Kind, p.Name, err)
		}
	}
	return nil
}

// AttachLogger sets the exported field Log of type telegraf.Logger on the
// plugin, as Telegraf does, if the plugin has one.
func AttachLogger(plugin any, l telegraf.Logger) {
	v := reflect.ValueOf(plugin)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return
	}
	f := v.Elem().FieldByName("Log")
	if f.IsValid() && f.CanSet() && f.Type() == reflect.TypeFor[telegraf.Logger]() {
		f.Set(reflect.ValueOf(l))
	}
}

func cleanTOMLError(err error) error {
	var perr toml.ParseError
	if errors.As(err, &perr) {
		return fmt.Errorf("%s: %s", perr.LastKey, perr.Message)
	}
	return err
}

func unknownKeyError(data []byte, source string, key toml.Key) error {
	line := keyLine(data, key)
	switch {
	case len(key) >= 3 && (key[0] == "inputs" || key[0] == "outputs"):
		return fmt.Errorf("%s:%d: [[%s.%s]]: unknown option %q", source, line, key[0], key[1], strings.Join(key[2:], "."))
	case len(key) >= 2 && key[0] == "agent":
		return fmt.Errorf("%s:%d: [agent]: unknown option %q", source, line, strings.Join(key[1:], "."))
	default:
		return fmt.Errorf("%s:%d: unknown section or key %q (hap-monitor reads [agent], [global_tags], [[inputs.NAME]] and [[outputs.NAME]])", source, line, key.String())
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
