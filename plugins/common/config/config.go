// Package config loads hap-monitor's TOML configuration the way Telegraf
// reads its own: environment variables substituted first (never inside
// comments), then [agent], [global_tags], and [[inputs.NAME]] and
// [[outputs.NAME]] sections (or the single-table form [inputs.NAME]) with
// Telegraf's options common to every plugin. Plugins come from Telegraf's
// registries (inputs.Inputs, outputs.Outputs), so any plugin registered
// there can be configured. A key no one reads is an error naming the file,
// the line and the key, never silence.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/plugins/outputs"

	"github.com/hap-monitor/hap-monitor/plugins/common/contract"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
	"github.com/hap-monitor/hap-monitor/plugins/common/metricfilter"
)

// Plugin is what every configured plugin carries besides its own options:
// Telegraf's common options.
type Plugin struct {
	Kind  string // "inputs" or "outputs"
	Name  string // registry name, e.g. "haproxy"
	Alias string // the section's alias option, if any
	Line  int    // line of the section header in the file

	// Tags are the section's [inputs.NAME.tags] (inputs only).
	Tags map[string]string
	// NameOverride, NamePrefix and NameSuffix rename the metrics.
	NameOverride, NamePrefix, NameSuffix string
	// Filter holds namepass, tagpass, fieldinclude, taginclude and the
	// like; nil when none is set.
	Filter *metricfilter.Filter
}

// ID names the plugin in logs: "inputs.haproxy" or "inputs.haproxy::alias".
func (p *Plugin) ID() string {
	if p.Alias != "" {
		return p.Kind + "." + p.Name + "::" + p.Alias
	}
	return p.Kind + "." + p.Name
}

// Rename applies name_override, name_prefix and name_suffix to m.
func (p *Plugin) Rename(m telegraf.Metric) {
	if p.NameOverride != "" {
		m.SetName(p.NameOverride)
	}
	if p.NamePrefix != "" {
		m.AddPrefix(p.NamePrefix)
	}
	if p.NameSuffix != "" {
		m.AddSuffix(p.NameSuffix)
	}
}

// Input is one configured input plugin.
type Input struct {
	Plugin
	Input telegraf.Input
	// Schedule says when the input gathers: its own interval, precision,
	// collection_jitter and collection_offset, else [agent]'s.
	Schedule Schedule
}

// Schedule is when an input gathers and how its timestamps are rounded.
type Schedule struct {
	Interval  time.Duration
	Align     bool // round_interval: on multiples of Interval
	Jitter    time.Duration
	Offset    time.Duration
	Precision time.Duration
}

// Output is one configured output plugin.
type Output struct {
	Plugin
	Output telegraf.Output
	// FlushInterval, FlushJitter and BatchSize are the section's, else
	// [agent]'s, else the defaults.
	FlushInterval time.Duration
	FlushJitter   time.Duration
	BatchSize     int
}

// Config is a loaded, validated configuration.
type Config struct {
	Source     string // file name, for messages
	Agent      Agent
	GlobalTags map[string]string
	Inputs     []*Input
	Outputs    []*Output
	// IgnoredAgentKeys are the [agent] keys set that mean nothing here.
	IgnoredAgentKeys []string
}

// LogIgnored names the [agent] keys that mean nothing here in one debug
// line, if any is set. Call it once the logging is set up as [agent] says.
func (c *Config) LogIgnored(log telegraf.Logger) {
	if len(c.IgnoredAgentKeys) > 0 {
		log.Debugf("%s: ignoring %s (no meaning for hap-monitor)", c.Source, strings.Join(c.IgnoredAgentKeys, ", "))
	}
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
	Agent      Agent                     `toml:"agent"`
	GlobalTags map[string]string         `toml:"global_tags"`
	Inputs     map[string]toml.Primitive `toml:"inputs"`
	Outputs    map[string]toml.Primitive `toml:"outputs"`
}

// commonOptions are Telegraf's options of every plugin section.
type commonOptions struct {
	Alias        string `toml:"alias"`
	NameOverride string `toml:"name_override"`
	NamePrefix   string `toml:"name_prefix"`
	NameSuffix   string `toml:"name_suffix"`
	metricfilter.Options
	MetricPass string `toml:"metricpass"`
}

// inputOptions are Telegraf's options of every input section.
type inputOptions struct {
	commonOptions
	Tags             map[string]string `toml:"tags"`
	Interval         Duration          `toml:"interval"`
	Precision        Duration          `toml:"precision"`
	CollectionJitter *Duration         `toml:"collection_jitter"`
	CollectionOffset Duration          `toml:"collection_offset"`
}

// outputOptions are Telegraf's options of every output section.
type outputOptions struct {
	commonOptions
	FlushInterval     Duration `toml:"flush_interval"`
	FlushJitter       Duration `toml:"flush_jitter"`
	MetricBatchSize   int      `toml:"metric_batch_size"`
	MetricBufferLimit int      `toml:"metric_buffer_limit"`
}

// parser holds what every step of Parse needs for its messages.
type parser struct {
	data    []byte
	source  string
	md      toml.MetaData
	headers headerLines
	agent   Agent
}

// Parse substitutes environment variables in data (named source in
// messages), decodes it, builds each plugin from the registries, gives it a
// logger writing to logs, and calls its Init. Every error is one line,
// "source:line: message", naming the key or plugin at fault.
func Parse(data []byte, source string, logs *logger.Sink) (*Config, error) {
	data, err := expandEnv(data, os.LookupEnv)
	if err != nil {
		var envErr *EnvError
		if errors.As(err, &envErr) {
			return nil, fmt.Errorf("%s:%d: %s", source, envErr.Line, envErr.Msg)
		}
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	p := &parser{data: data, source: source}
	var f file
	p.md, err = toml.Decode(string(data), &f)
	if err != nil {
		return nil, p.tomlError(err, 0)
	}
	p.headers = sectionLines(data)
	if err := p.checkTables(f); err != nil {
		return nil, err
	}
	p.agent = f.Agent
	cfg := &Config{Source: source, Agent: f.Agent, GlobalTags: f.GlobalTags}

	cfg.Inputs, err = buildAll(p, "inputs", f.Inputs, inputs.Inputs, p.input)
	if err != nil {
		return nil, err
	}
	cfg.Outputs, err = buildAll(p, "outputs", f.Outputs, outputs.Outputs, p.output)
	if err != nil {
		return nil, err
	}
	if keys := p.md.Undecoded(); len(keys) > 0 {
		return nil, p.unknownKey(keys[0])
	}
	if err := f.Agent.validate(data, source); err != nil {
		return nil, err
	}
	cfg.IgnoredAgentKeys = p.ignoredAgentKeys()

	for _, in := range cfg.Inputs {
		if err := p.init(in.Input, &in.Plugin, logs); err != nil {
			return nil, err
		}
	}
	for _, out := range cfg.Outputs {
		if err := p.init(out.Output, &out.Plugin, logs); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// checkTables reports a key that must be a table and is not: the decoder
// quietly leaves a map empty when given, say, a string.
func (p *parser) checkTables(f file) error {
	keys := []toml.Key{{"agent"}, {"global_tags"}, {"inputs"}, {"outputs"}}
	for kind, sections := range map[string]map[string]toml.Primitive{"inputs": f.Inputs, "outputs": f.Outputs} {
		for name := range sections {
			for _, opt := range []string{"tags", "tagpass", "tagdrop"} {
				keys = append(keys, toml.Key{kind, name, opt})
			}
		}
	}
	for _, k := range keys {
		if t := p.md.Type(k...); t != "" && t != "Hash" && !(len(k) == 2 && t == "ArrayHash") {
			return fmt.Errorf("%s:%d: %s must be a table: [%s]", p.source, keyLine(p.data, k), k, k)
		}
	}
	return nil
}

// buildAll builds every section of one kind, in the order of the file,
// whether written [[kind.NAME]] (any number) or [kind.NAME] (one).
func buildAll[P any, C ~func() P, T any](p *parser, kind string, sections map[string]toml.Primitive,
	registry map[string]C, build func(plugin P, prim toml.Primitive, base Plugin) (T, error)) ([]T, error) {
	type built struct {
		line int
		v    T
	}
	var all []built
	for _, name := range sortedKeys(sections) {
		prims, err := p.tables(kind, name, sections[name])
		if err != nil {
			return nil, err
		}
		creator, ok := registry[name]
		for i, prim := range prims {
			base := Plugin{Kind: kind, Name: name, Line: p.headers.line(kind+"."+name, i)}
			if !ok {
				return nil, fmt.Errorf("%s:%d: unknown %s plugin %q (known: %s)",
					p.source, base.Line, strings.TrimSuffix(kind, "s"), name, strings.Join(sortedKeys(registry), ", "))
			}
			v, err := build(creator(), prim, base)
			if err != nil {
				return nil, err
			}
			all = append(all, built{base.Line, v})
		}
	}
	sort.SliceStable(all, func(a, b int) bool { return all[a].line < all[b].line })
	out := make([]T, len(all))
	for i, b := range all {
		out[i] = b.v
	}
	return out, nil
}

// tables returns the sections of kind.name: several for [[kind.name]], one
// for [kind.name].
func (p *parser) tables(kind, name string, prim toml.Primitive) ([]toml.Primitive, error) {
	switch p.md.Type(kind, name) {
	case "Hash":
		return []toml.Primitive{prim}, nil
	case "ArrayHash":
		var prims []toml.Primitive
		if err := p.md.PrimitiveDecode(prim, &prims); err != nil {
			return nil, p.tomlError(err, p.headers.line(kind+"."+name, 0))
		}
		return prims, nil
	}
	return nil, fmt.Errorf("%s:%d: %s.%s must be a table: [[%s.%s]] or [%s.%s]",
		p.source, keyLine(p.data, toml.Key{kind, name}), kind, name, kind, name, kind, name)
}

// input builds one input section: Telegraf's common options, then the
// plugin's own.
func (p *parser) input(plugin telegraf.Input, prim toml.Primitive, base Plugin) (*Input, error) {
	var o inputOptions
	if err := p.decode(prim, &o, &base); err != nil {
		return nil, err
	}
	in := &Input{Plugin: base, Input: plugin}
	in.Tags = o.Tags
	fieldsHere := true
	if fs, ok := plugin.(contract.FieldSelector); ok {
		include, exclude := o.Fields()
		if len(include)+len(exclude) > 0 {
			fs.SelectFields(include, exclude)
		}
		fieldsHere = false
	}
	if err := p.common(&in.Plugin, o.commonOptions, fieldsHere); err != nil {
		return nil, err
	}
	if err := p.decode(prim, plugin, &in.Plugin); err != nil {
		return nil, err
	}
	in.Schedule = Schedule{
		Interval:  time.Duration(o.Interval),
		Align:     p.agent.Round(),
		Jitter:    time.Duration(p.agent.CollectionJitter),
		Offset:    time.Duration(p.agent.CollectionOffset),
		Precision: time.Duration(o.Precision),
	}
	if in.Schedule.Interval <= 0 {
		in.Schedule.Interval = p.agent.GatherInterval()
	}
	if o.CollectionJitter != nil {
		in.Schedule.Jitter = time.Duration(*o.CollectionJitter)
	}
	if o.CollectionOffset > 0 {
		in.Schedule.Offset = time.Duration(o.CollectionOffset)
	}
	if in.Schedule.Precision <= 0 {
		in.Schedule.Precision = time.Duration(p.agent.Precision)
	}
	if in.Schedule.Precision <= 0 {
		in.Schedule.Precision = precisionOf(in.Schedule.Interval)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"interval", time.Duration(o.Interval)}, {"precision", time.Duration(o.Precision)}, {"collection_offset", time.Duration(o.CollectionOffset)}, {"collection_jitter", in.Schedule.Jitter}} {
		if d.v < 0 {
			return nil, p.optionError(&in.Plugin, d.key, "must not be negative")
		}
	}
	return in, nil
}

// precisionOf is Telegraf's default precision for an interval: its order of
// magnitude, at most a second.
func precisionOf(interval time.Duration) time.Duration {
	switch {
	case interval >= time.Second:
		return time.Second
	case interval >= time.Millisecond:
		return time.Millisecond
	case interval >= time.Microsecond:
		return time.Microsecond
	}
	return time.Nanosecond
}

// output builds one output section: Telegraf's common options, then the
// plugin's own.
func (p *parser) output(plugin telegraf.Output, prim toml.Primitive, base Plugin) (*Output, error) {
	var o outputOptions
	if err := p.decode(prim, &o, &base); err != nil {
		return nil, err
	}
	out := &Output{Plugin: base, Output: plugin}
	if err := p.common(&out.Plugin, o.commonOptions, true); err != nil {
		return nil, err
	}
	if bl, ok := plugin.(contract.BufferLimiter); ok && p.agent.MetricBufferLimit > 0 {
		bl.SetMetricBufferLimit(p.agent.MetricBufferLimit)
	}
	if err := p.decode(prim, plugin, &out.Plugin); err != nil {
		return nil, err
	}
	switch {
	case o.FlushInterval < 0:
		return nil, p.optionError(&out.Plugin, "flush_interval", "must not be negative")
	case o.FlushJitter < 0:
		return nil, p.optionError(&out.Plugin, "flush_jitter", "must not be negative")
	case o.MetricBatchSize < 0:
		return nil, p.optionError(&out.Plugin, "metric_batch_size", "must not be negative")
	case o.MetricBufferLimit < 0:
		return nil, p.optionError(&out.Plugin, "metric_buffer_limit", "must not be negative")
	}
	out.FlushInterval = p.agent.Flush()
	if o.FlushInterval > 0 {
		out.FlushInterval = time.Duration(o.FlushInterval)
	}
	out.FlushJitter = time.Duration(p.agent.FlushJitter)
	if o.FlushJitter > 0 {
		out.FlushJitter = time.Duration(o.FlushJitter)
	}
	out.BatchSize = p.agent.BatchSize()
	if o.MetricBatchSize > 0 {
		out.BatchSize = o.MetricBatchSize
	}
	return out, nil
}

// common applies the options every section shares. With fields false the
// plugin filters fields itself.
func (p *parser) common(pl *Plugin, o commonOptions, fields bool) error {
	if o.MetricPass != "" {
		return p.optionError(pl, "metricpass", "CEL expressions are not supported; use namepass, namedrop, tagpass and tagdrop, or filter in Telegraf")
	}
	pl.Alias = o.Alias
	pl.NameOverride, pl.NamePrefix, pl.NameSuffix = o.NameOverride, o.NamePrefix, o.NameSuffix
	f, err := metricfilter.New(o.Options, fields)
	if err != nil {
		key, _, _ := strings.Cut(err.Error(), ":")
		key, _, _ = strings.Cut(key, ".")
		return fmt.Errorf("%s:%d: %s: %w", p.source, p.keyLineIn(pl, key), pl.header(), err)
	}
	pl.Filter = f
	return nil
}

// decode decodes one section into v, reporting errors at the line of the
// key at fault.
func (p *parser) decode(prim toml.Primitive, v any, pl *Plugin) error {
	if err := p.md.PrimitiveDecode(prim, v); err != nil {
		line, msg := tomlLineMessage(err)
		if line == 0 {
			line = pl.Line
		}
		msg = strings.TrimPrefix(msg, pl.Kind+"."+pl.Name+".")
		return fmt.Errorf("%s:%d: %s: %s", p.source, line, pl.header(), msg)
	}
	return nil
}

// header is the section as written in messages: "[[inputs.haproxy]]".
func (pl *Plugin) header() string { return "[[" + pl.Kind + "." + pl.Name + "]]" }

// keyLineIn returns the line of key in pl's section, or the header's.
func (p *parser) keyLineIn(pl *Plugin, key string) int {
	if l := keyLineFrom(p.data, pl.Kind+"."+pl.Name, pl.Line, key); l > 0 {
		return l
	}
	return pl.Line
}

func (p *parser) optionError(pl *Plugin, key, msg string) error {
	return fmt.Errorf("%s:%d: %s: %s %s", p.source, p.keyLineIn(pl, key), pl.header(), key, msg)
}

// init attaches a logger and runs the plugin's Init, if it has one.
func (p *parser) init(plugin any, pl *Plugin, logs *logger.Sink) error {
	if logs != nil {
		AttachLogger(plugin, logger.New(logs, pl.ID()))
	}
	if i, ok := plugin.(telegraf.Initializer); ok {
		if err := i.Init(); err != nil {
			return fmt.Errorf("%s:%d: %s: %w", p.source, pl.Line, pl.header(), err)
		}
	}
	return nil
}

// ignoredAgentKeys returns the [agent] keys set that mean nothing here.
func (p *parser) ignoredAgentKeys() []string {
	var set []string
	for _, k := range ignoredAgentKeys {
		if p.md.IsDefined("agent", k) {
			set = append(set, k)
		}
	}
	return set
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

// tomlError reports a TOML error as "source:line: message", with the line
// the decoder gives, else fallback.
func (p *parser) tomlError(err error, fallback int) error {
	line, msg := tomlLineMessage(err)
	if line == 0 {
		line = fallback
	}
	if line > 0 {
		return fmt.Errorf("%s:%d: %s", p.source, line, msg)
	}
	return fmt.Errorf("%s: %s", p.source, msg)
}

// decodeErrorRE matches the decoder's type errors, which carry their line
// and key in their text: toml: line 3 (last key "agent.interval"): ...
var decodeErrorRE = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)

// tomlLineMessage splits a TOML error into its line (0 if it has none) and
// a message that does not repeat the line.
func tomlLineMessage(err error) (int, string) {
	var perr toml.ParseError
	if errors.As(err, &perr) {
		msg := perr.Message
		if perr.LastKey != "" && !strings.Contains(msg, perr.LastKey) {
			msg = perr.LastKey + ": " + msg
		}
		return perr.Position.Line, msg
	}
	if m := decodeErrorRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return line, m[2] + ": " + plainTypes(m[3])
	}
	return 0, strings.TrimPrefix(err.Error(), "toml: ")
}

// typeErrorRE matches the decoder's words for a value of the wrong type.
var typeErrorRE = regexp.MustCompile(`^incompatible types: TOML value has type (\w+); destination has type (\w+)$`)

// plainTypes says a type error in TOML's words: "want an array, not a
// string".
func plainTypes(msg string) string {
	m := typeErrorRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	words := map[string]string{
		"slice": "an array", "array": "an array", "map": "a table", "struct": "a table",
		"string": "a string", "boolean": "true or false", "bool": "true or false",
		"integer": "an integer", "float": "a number", "datetime": "a date and time",
	}
	word := func(t string) string {
		switch {
		case words[t] != "":
			return words[t]
		case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
			return "an integer"
		case strings.HasPrefix(t, "float"):
			return "a number"
		}
		return t
	}
	return "want " + word(m[2]) + ", not " + word(m[1])
}

// telegrafOnly are plugin options Telegraf knows that hap-monitor does not
// support, with what to do instead.
var telegrafOnly = map[string]string{
	"pass":                   "Telegraf's old name of fieldinclude: use fieldinclude",
	"drop":                   "Telegraf's old name of fieldexclude: use fieldexclude",
	"log_level":              "not supported: use [agent] debug or quiet",
	"startup_error_behavior": "not supported: a plugin that fails to start stops hap-monitor with exit 2",
	"time_source":            "not supported: metrics carry the time the input gives them",
}

func (p *parser) unknownKey(key toml.Key) error {
	line := keyLine(p.data, key)
	switch {
	case len(key) >= 3 && (key[0] == "inputs" || key[0] == "outputs"):
		opt := strings.Join(key[2:], ".")
		if hint, ok := telegrafOnly[opt]; ok {
			return fmt.Errorf("%s:%d: [[%s.%s]]: option %q: %s", p.source, line, key[0], key[1], opt, hint)
		}
		return fmt.Errorf("%s:%d: [[%s.%s]]: unknown option %q", p.source, line, key[0], key[1], opt)
	case len(key) >= 2 && key[0] == "agent":
		return fmt.Errorf("%s:%d: [agent]: unknown option %q", p.source, line, strings.Join(key[1:], "."))
	case len(key) >= 1 && (key[0] == "processors" || key[0] == "aggregators" || key[0] == "secretstores"):
		return fmt.Errorf("%s:%d: [[%s]]: hap-monitor runs no %s; run them in Telegraf, with hap-monitor as its execd input or output", p.source, line, key.String(), key[0])
	default:
		return fmt.Errorf("%s:%d: unknown section or key %q (hap-monitor reads [agent], [global_tags], [[inputs.NAME]] and [[outputs.NAME]])", p.source, line, key.String())
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
