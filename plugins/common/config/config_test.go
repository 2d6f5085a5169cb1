package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/plugins/outputs"

	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// probeInput is a minimal input registered for these tests only.
type probeInput struct {
	Servers []string        `toml:"servers"`
	Timeout Duration        `toml:"timeout"`
	Log     telegraf.Logger `toml:"-"`
	inited  bool
}

func (*probeInput) SampleConfig() string { return "" }
func (*probeInput) Gather(telegraf.Accumulator) error {
	return nil
}
func (p *probeInput) Init() error {
	if len(p.Servers) == 0 {
		return errors.New("servers: at least one server is required")
	}
	p.inited = true
	return nil
}

type probeOutput struct {
	Prefix string `toml:"prefix"`
}

func (*probeOutput) SampleConfig() string             { return "" }
func (*probeOutput) Connect() error                   { return nil }
func (*probeOutput) Close() error                     { return nil }
func (*probeOutput) Write(ms []telegraf.Metric) error { return nil }

func init() {
	inputs.Add("config_probe", func() telegraf.Input { return &probeInput{} })
	outputs.Add("config_probe", func() telegraf.Output { return &probeOutput{} })
}

func parse(t *testing.T, text string) (*Config, error) {
	t.Helper()
	var logs bytes.Buffer
	return Parse([]byte(text), "test.conf", logger.NewSink(&logs, telegraf.Info))
}

func TestParseBuildsPluginsWithTagsAndAgent(t *testing.T) {
	cfg, err := parse(t, `
[agent]
  hostname = "lb-7"
  metric_batch_size = 50
  flush_interval = "250ms"

[global_tags]
  dc = "gva"

[[inputs.config_probe]]
  alias = "first"
  servers = ["/run/a.sock"]
  timeout = "2s"
  [inputs.config_probe.tags]
    role = "edge"

[[outputs.config_probe]]
  prefix = "my.scope"
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Inputs) != 1 || len(cfg.Outputs) != 1 {
		t.Fatalf("got %d inputs and %d outputs, want 1 and 1", len(cfg.Inputs), len(cfg.Outputs))
	}
	in := cfg.Inputs[0]
	p := in.Input.(*probeInput)
	if !p.inited || p.Log == nil || time.Duration(p.Timeout) != 2*time.Second {
		t.Errorf("input not set up: inited=%v log=%v timeout=%v", p.inited, p.Log != nil, p.Timeout)
	}
	if in.ID() != "inputs.config_probe::first" || in.Tags["role"] != "edge" || in.Line != 10 {
		t.Errorf("input section: id %q tags %v line %d", in.ID(), in.Tags, in.Line)
	}
	if got := cfg.Outputs[0].Output.(*probeOutput).Prefix; got != "my.scope" {
		t.Errorf("output prefix %q", got)
	}
	if cfg.Agent.Hostname != "lb-7" || cfg.Agent.BatchSize() != 50 || cfg.Agent.Flush() != 250*time.Millisecond {
		t.Errorf("agent: %+v", cfg.Agent)
	}
	if cfg.GlobalTags["dc"] != "gva" {
		t.Errorf("global tags: %v", cfg.GlobalTags)
	}
}

func TestAgentDefaults(t *testing.T) {
	cfg, err := parse(t, "[[outputs.config_probe]]\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Agent.BatchSize() != DefaultMetricBatchSize || cfg.Agent.Flush() != DefaultFlushInterval {
		t.Errorf("defaults: batch %d flush %v", cfg.Agent.BatchSize(), cfg.Agent.Flush())
	}
}

func TestParseErrorsNameKeyAndLine(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // every part must be in the message
	}{
		{
			name: "unknown plugin option",
			text: "[[inputs.config_probe]]\n  servers = [\"/a\"]\n  sever = 1\n",
			want: []string{"test.conf:3:", "[[inputs.config_probe]]", `unknown option "sever"`},
		},
		{
			name: "unknown agent option",
			text: "[agent]\n  interval = \"1s\"\n  flush_intervall = \"1s\"\n",
			want: []string{"test.conf:3:", "[agent]", `"flush_intervall"`},
		},
		{
			name: "unknown section",
			text: "\n[inptus.haproxy]\n  servers = []\n",
			want: []string{"test.conf:", "inptus"},
		},
		{
			name: "unknown input plugin",
			text: "# comment\n[[inputs.haproxyy]]\n",
			want: []string{"test.conf:2:", `unknown input plugin "haproxyy"`},
		},
		{
			name: "unknown output plugin",
			text: "[[outputs.graphite_statsdd]]\n",
			want: []string{"test.conf:1:", `unknown output plugin "graphite_statsdd"`},
		},
		{
			name: "bad duration in a plugin",
			text: "[[inputs.config_probe]]\n  servers = [\"/a\"]\n  timeout = \"5 parsecs\"\n",
			want: []string{"test.conf:3:", "timeout", "invalid duration"},
		},
		{
			name: "bad duration in agent",
			text: "[agent]\n  flush_interval = \"soon\"\n",
			want: []string{"test.conf", "flush_interval", "soon"},
		},
		{
			name: "negative batch size",
			text: "[agent]\n\n  metric_batch_size = -5\n",
			want: []string{"test.conf:3:", "metric_batch_size", "negative"},
		},
		{
			name: "Init failure",
			text: "[[inputs.config_probe]]\n  servers = []\n",
			want: []string{"test.conf:1:", "servers: at least one server"},
		},
		{
			name: "syntax error",
			text: "[[inputs.config_probe]]\n  servers = [\"/a\"\n",
			want: []string{"test.conf:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.text)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
