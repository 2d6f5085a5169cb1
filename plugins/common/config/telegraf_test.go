package config

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// TestTelegrafAgentTable reads the [agent] table that Telegraf v1.39.3's
// "telegraf config" writes (testdata), with every commented key set too:
// each is accepted, those that mean something keep their value, and those
// that mean nothing here are named in one debug line.
func TestTelegrafAgentTable(t *testing.T) {
	data, err := os.ReadFile("testdata/telegraf-v1.39.3-agent.conf")
	if err != nil {
		t.Fatal(err)
	}
	uncomment := regexp.MustCompile(`(?m)^  # ([a-z_]+ = .*)$`)
	text := uncomment.ReplaceAllString(string(data), "  $1") + `
  logtarget = "stderr"
  always_include_local_tags = true
  always_include_global_tags = false
  config_url_retry_attempts = 3
  buffer_strategy = "memory"
  buffer_directory = "/tmp"
  buffer_disk_sync = true

[[outputs.config_probe]]
`
	var logs bytes.Buffer
	cfg, err := Parse([]byte(text), "telegraf.conf", logger.NewSink(&logs, telegraf.Debug))
	if err != nil {
		t.Fatalf("Telegraf's own [agent] table refused: %v", err)
	}
	cfg.LogIgnored(logger.New(logger.NewSink(&logs, telegraf.Debug), "agent"))
	a := cfg.Agent
	if a.GatherInterval() != 10*time.Second || !a.Round() || a.BatchSize() != 1000 ||
		a.MetricBufferLimit != 10000 || a.Flush() != 10*time.Second || !a.AlwaysIncludeLocalTags {
		t.Errorf("agent = %+v", a)
	}
	debug := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(debug) != 1 || !strings.HasPrefix(debug[0], "D! ") {
		t.Fatalf("want one debug line naming the ignored keys, got %q", logs.String())
	}
	for _, k := range []string{"logtarget", "logformat", "statefile", "snmp_translator", "logfile_rotation_max_size", "buffer_strategy"} {
		if !strings.Contains(debug[0], k) {
			t.Errorf("debug line %q does not name %s", debug[0], k)
		}
	}
	for _, k := range []string{"interval", "precision", "hostname"} {
		if regexp.MustCompile(`\b` + k + `\b`).MatchString(strings.SplitN(debug[0], "ignoring", 2)[1]) {
			t.Errorf("debug line %q names %s, which does mean something", debug[0], k)
		}
	}
}

func TestSingleTableForm(t *testing.T) {
	cfg, err := parse(t, `
[inputs.config_probe]
  servers = ["/run/a.sock"]
  [inputs.config_probe.tags]
    role = "edge"

[outputs.config_probe]
  prefix = "p"
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Inputs) != 1 || cfg.Inputs[0].Line != 2 || cfg.Inputs[0].Tags["role"] != "edge" {
		t.Fatalf("inputs = %+v", cfg.Inputs)
	}
	if len(cfg.Outputs) != 1 || cfg.Outputs[0].Output.(*probeOutput).Prefix != "p" {
		t.Fatalf("outputs = %+v", cfg.Outputs)
	}
}

func TestCommonOptions(t *testing.T) {
	cfg, err := parse(t, `
[agent]
  interval = "30s"
  flush_interval = "3s"
  metric_batch_size = 200
  collection_jitter = "2s"

[[inputs.config_probe]]
  servers = ["/run/a.sock"]
  alias = "edge"
  interval = "5s"
  collection_offset = "1s"
  name_prefix = "lb_"
  namepass = ["haproxy*"]
  fieldexclude = ["smax"]
  [inputs.config_probe.tagpass]
    proxy = ["web*"]

[[inputs.config_probe]]
  servers = ["/run/b.sock"]
  precision = "1ms"
  collection_jitter = "0s"

[[outputs.config_probe]]
  flush_interval = "250ms"
  metric_batch_size = 50
  name_override = "hap"
  tagexclude = ["server"]
`)
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Inputs[0], cfg.Inputs[1]
	if a.ID() != "inputs.config_probe::edge" {
		t.Errorf("ID = %q", a.ID())
	}
	want := Schedule{Interval: 5 * time.Second, Align: true, Jitter: 2 * time.Second, Offset: time.Second, Precision: time.Second}
	if a.Schedule != want {
		t.Errorf("first input's schedule %+v, want %+v", a.Schedule, want)
	}
	want = Schedule{Interval: 30 * time.Second, Align: true, Precision: time.Millisecond}
	if b.Schedule != want {
		t.Errorf("second input's schedule %+v, want %+v", b.Schedule, want)
	}
	m := metric.New("haproxy", map[string]string{"proxy": "web1", "server": "/a"}, map[string]any{"scur": 1, "smax": 2}, time.Now())
	if !a.Filter.Select(m) {
		t.Error("namepass/tagpass should select haproxy{proxy=web1}")
	}
	a.Filter.Modify(m)
	if _, ok := m.GetField("smax"); ok {
		t.Error("fieldexclude should drop smax")
	}
	a.Rename(m)
	if m.Name() != "lb_haproxy" {
		t.Errorf("name %q, want lb_haproxy", m.Name())
	}
	if b.Filter != nil {
		t.Error("a section without filters has a filter")
	}
	out := cfg.Outputs[0]
	if out.FlushInterval != 250*time.Millisecond || out.BatchSize != 50 || out.NameOverride != "hap" {
		t.Errorf("output = %+v", out)
	}
}

func TestEnvironmentSubstitution(t *testing.T) {
	t.Setenv("HAP_TEST_SOCKET", "/run/haproxy/admin.sock")
	cfg, err := parse(t, `
# a comment naming $HAP_TEST_UNSET is left alone
[[inputs.config_probe]]
  servers = ["${HAP_TEST_SOCKET}", "${HAP_TEST_UNSET:-/run/other.sock}"]
  timeout = "$${literal}"
`)
	if err == nil {
		t.Fatalf("a literal ${literal} is not a duration; parsed %+v", cfg)
	}
	cfg, err = parse(t, `
# a comment naming $HAP_TEST_UNSET is left alone
[[inputs.config_probe]]
  servers = ["${HAP_TEST_SOCKET}", "${HAP_TEST_UNSET:-/run/other.sock}"]
`)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Inputs[0].Input.(*probeInput).Servers
	if strings.Join(got, ",") != "/run/haproxy/admin.sock,/run/other.sock" {
		t.Errorf("servers = %q", got)
	}
	_, err = parse(t, "[[inputs.config_probe]]\n\n  servers = [\"$HAP_TEST_UNSET\"]\n")
	if err == nil || !strings.HasPrefix(err.Error(), "test.conf:3: ") || !strings.Contains(err.Error(), "HAP_TEST_UNSET is not set") {
		t.Errorf("unset variable: %v", err)
	}
}

// TestErrorsHaveOneLine checks that every TOML error is "file:line:
// message" with no second line number inside the message.
func TestErrorsHaveOneLine(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[inputs.config_probe]\nservers = \"x\"\n", `test.conf:2: [[inputs.config_probe]]: servers: want an array, not a string`},
		{"[agent]\n  round_interval = \"yes\"\n", `test.conf:2: agent.round_interval: want true or false, not a string`},
		{"[[inputs.config_probe]]\n servers = [\"/a\"]\n[inputs.config_probe]\n", `test.conf:3: `},
		{"inputs = 3\n", `test.conf:1: inputs must be a table`},
		{"[[inputs.config_probe]]\n servers = [\"/a\"]\n tagpass = [\"web\"]\n", `test.conf:3: inputs.config_probe.tagpass must be a table`},
		{"[[inputs.config_probe]]\n servers = [\"/a\"]\n tags = \"web\"\n", `test.conf:3: inputs.config_probe.tags must be a table`},
		{"[[inputs.config_probe]]\n servers = [\"/a\"]\n metricpass = \"true\"\n", `test.conf:3: [[inputs.config_probe]]: metricpass CEL expressions are not supported`},
		{"[[inputs.config_probe]]\n servers = [\"/a\"]\n pass = [\"x\"]\n", `test.conf:3: [[inputs.config_probe]]: option "pass": Telegraf's old name of fieldinclude`},
		{"[[inputs.config_probe]]\n servers = [\"/a\"]\n namepass = [\"[x\"]\n", `test.conf:3: [[inputs.config_probe]]: namepass: `},
		{"[[processors.rename]]\n", `test.conf:1: [[processors.rename]]: hap-monitor runs no processors`},
		{"[[outputs.config_probe]]\n interval = \"5s\"\n", `test.conf:2: [[outputs.config_probe]]: unknown option "interval"`},
		{"[agent]\n  debug = true\n  quiet = true\n", `test.conf:3: [agent]: quiet cannot be combined with debug`},
		{"[agent]\n  collection_jitter = \"-1s\"\n", `test.conf:2: [agent]: collection_jitter must not be negative`},
		{"[[inputs.config_probe]]\n servers = [\"/a\"]\n collection_offset = \"-2s\"\n", `test.conf:3: [[inputs.config_probe]]: collection_offset must not be negative`},
		{"[[outputs.config_probe]]\n flush_interval = \"-1s\"\n", `test.conf:2: [[outputs.config_probe]]: flush_interval must not be negative`},
		{"[[outputs.config_probe]]\n metric_batch_size = -3\n", `test.conf:2: [[outputs.config_probe]]: metric_batch_size must not be negative`},
		{"[agent]\n  logfile_rotation_max_size = \"ten\"\n", `test.conf:2: agent.logfile_rotation_max_size: invalid size`},
	} {
		_, err := parse(t, tc.text)
		if err == nil {
			t.Errorf("%q: no error", tc.text)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q:\n got  %v\n want %s...", tc.text, err, tc.want)
		}
		if regexp.MustCompile(`line \d`).MatchString(err.Error()) {
			t.Errorf("%q: a second line number in %v", tc.text, err)
		}
	}
}
