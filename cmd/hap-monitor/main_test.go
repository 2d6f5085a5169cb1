package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
	"github.com/hap-monitor/hap-monitor/plugins/inputs/haproxy"
	"github.com/hap-monitor/hap-monitor/plugins/outputs/graphite_statsd"
)

// The original's crontab line, but the binary's name.
const crontabLine = "--backend graphite.host:2003::my.system.stats.haproxy --type G --sockets /var/run/haproxy_admin_process_no_1.sock /var/run/haproxy_admin_process_no_2.sock"

func TestOriginalCommandLine(t *testing.T) {
	tests := []struct {
		name      string
		args      string
		sockets   []string
		servers   []string
		format    string
		transport string
		prefix    string
		verbose   bool
		wantErr   string // part of the usage error, naming the flag
	}{
		{
			name:    "crontab line verbatim",
			args:    crontabLine,
			sockets: []string{"/var/run/haproxy_admin_process_no_1.sock", "/var/run/haproxy_admin_process_no_2.sock"},
			servers: []string{"graphite.host:2003"}, format: "graphite", transport: "udp", prefix: "my.system.stats.haproxy",
		},
		{
			name:    "type absent is statsd, as the original",
			args:    "--backend statsd.host:8125::scope --sockets /a.sock",
			sockets: []string{"/a.sock"}, servers: []string{"statsd.host:8125"}, format: "statsd", transport: "udp", prefix: "scope",
		},
		{
			name:    "--type s, lower case",
			args:    "--type s --backend h:8125::a.b --sockets /a.sock",
			sockets: []string{"/a.sock"}, servers: []string{"h:8125"}, format: "statsd", transport: "udp", prefix: "a.b",
		},
		{
			name:    "--protocol tcp and --verbose, flags in any order",
			args:    "--verbose --sockets /a.sock /b.sock /c.sock --protocol tcp --type g --backend h:2003::x",
			sockets: []string{"/a.sock", "/b.sock", "/c.sock"}, servers: []string{"h:2003"}, format: "graphite", transport: "tcp", prefix: "x", verbose: true,
		},
		{
			name:    "= forms",
			args:    "--backend=h:2003::x --type=G --sockets=/a.sock /b.sock",
			sockets: []string{"/a.sock", "/b.sock"}, servers: []string{"h:2003"}, format: "graphite", transport: "udp", prefix: "x",
		},
		{
			name:    "no scope: paths start at the host",
			args:    "--backend graphite.host:2003 --type G --sockets /a.sock",
			sockets: []string{"/a.sock"}, servers: []string{"graphite.host:2003"}, format: "graphite", transport: "udp", prefix: "",
		},
		{
			name:    "empty scope",
			args:    "--backend graphite.host:2003:: --type G --sockets /a.sock",
			sockets: []string{"/a.sock"}, servers: []string{"graphite.host:2003"}, format: "graphite", transport: "udp", prefix: "",
		},
		{
			name:    "no port: Graphite's 2003",
			args:    "--backend graphite.host::x --type G --sockets /a.sock",
			sockets: []string{"/a.sock"}, servers: []string{"graphite.host:2003"}, format: "graphite", transport: "udp", prefix: "x",
		},
		{
			name:    "no port: statsd's 8125",
			args:    "--backend statsd.host::x --sockets /a.sock",
			sockets: []string{"/a.sock"}, servers: []string{"statsd.host:8125"}, format: "statsd", transport: "udp", prefix: "x",
		},
		{
			name:    "IPv6 host",
			args:    "--backend [::1]:2004::x.y --type G --sockets /a.sock",
			sockets: []string{"/a.sock"}, servers: []string{"[::1]:2004"}, format: "graphite", transport: "udp", prefix: "x.y",
		},
		{
			name:    "IPv6 host, no port",
			args:    "--backend [::1]::x --type G --sockets /a.sock",
			sockets: []string{"/a.sock"}, servers: []string{"[::1]:2003"}, format: "graphite", transport: "udp", prefix: "x",
		},
		{name: "no host", args: "--backend :2003::x --sockets /a.sock", wantErr: `--backend ":2003::x": no host`},
		{name: "IPv6 without brackets", args: "--backend fe80::1:2003::x --sockets /a.sock", wantErr: `an IPv6 host goes in brackets`},
		{name: "bad port", args: "--backend h:http::x --sockets /a.sock", wantErr: `port "http"`},
		{name: "missing backend", args: "--sockets /a.sock", wantErr: "--backend: required"},
		{name: "missing sockets", args: "--backend h:2003::x --type G", wantErr: "--sockets: at least one socket"},
		{name: "sockets without a value", args: "--backend h:2003::x --sockets --type G", wantErr: "--sockets needs at least one"},
		{name: "unknown type", args: "--backend h:2003::x --type X --sockets /a", wantErr: `--type "X"`},
		{name: "unknown protocol", args: "--backend h:2003::x --protocol sctp --sockets /a", wantErr: `--protocol "sctp"`},
		{name: "backend without value", args: "--sockets /a --backend", wantErr: "--backend needs a value"},
		{name: "with -config", args: "-config x.conf " + crontabLine, wantErr: "-config cannot be combined with --backend"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parseFlags(strings.Fields(tt.args), io.Discard, &stderr)
			var cfg *config.Config
			if err == nil {
				cfg, err = o.load(logger.NewSink(&stderr, telegraf.Info))
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !o.once || o.legacy.verbose != tt.verbose {
				t.Errorf("once %v verbose %v", o.once, o.legacy.verbose)
			}
			if len(cfg.Inputs) != 1 || len(cfg.Outputs) != 1 {
				t.Fatalf("%d inputs %d outputs", len(cfg.Inputs), len(cfg.Outputs))
			}
			in := cfg.Inputs[0].Input.(*haproxy.HAProxy)
			if !reflect.DeepEqual(in.Servers, tt.sockets) || !in.KeepFieldNames || !reflect.DeepEqual(in.IncludeFields, originalFields) {
				t.Errorf("input: servers %q keep_field_names %v include_fields %q", in.Servers, in.KeepFieldNames, in.IncludeFields)
			}
			// The original asked show info and show stat, nothing else.
			if in.OptionalMeasurements == nil || len(in.OptionalMeasurements) != 0 {
				t.Errorf("input: optional_measurements %#v, want none", in.OptionalMeasurements)
			}
			out := cfg.Outputs[0].Output.(*graphite_statsd.GraphiteStatsd)
			if !reflect.DeepEqual(out.Servers, tt.servers) || out.Format != tt.format || out.Transport != tt.transport || out.Prefix != tt.prefix {
				t.Errorf("output: servers %q format %q transport %q prefix %q", out.Servers, out.Format, out.Transport, out.Prefix)
			}
		})
	}
}

func TestHelpGoesToStdout(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{arg}, nil, &stdout, &stderr); code != exitOK {
			t.Errorf("%s: exit %d, want 0", arg, code)
		}
		if !strings.Contains(stdout.String(), "Usage:") || !strings.Contains(stdout.String(), "-poll_interval_disabled") ||
			!strings.Contains(stdout.String(), "GOMAXPROCS=N") || stderr.Len() != 0 {
			t.Errorf("%s: want the whole usage on stdout and nothing on stderr; stdout %q, stderr %q", arg, stdout.String(), stderr.String())
		}
	}
	// An unknown flag is one line on stderr that points to -h, not the
	// whole usage.
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-nosuchflag"}, nil, &stdout, &stderr)
	want := "E! flag provided but not defined: -nosuchflag (hap-monitor -h prints the usage)\n"
	if code != exitUsage || stdout.Len() != 0 || stderr.String() != want {
		t.Errorf("-nosuchflag: exit %d, stdout %q, stderr %q; want exit 2 and %q", code, stdout.String(), stderr.String(), want)
	}
}

func TestExitStatusOfUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("[[inputs.haproxy]]\n  servers = [\"/a.sock\"]\n  timeuot = \"1s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badSize := filepath.Join(dir, "size.conf")
	if err := os.WriteFile(badSize, []byte("[[outputs.graphite_statsd]]\n  spool_dir = \"/tmp/s\"\n  spool_limit = \"ten\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badRate := filepath.Join(dir, "rate.conf")
	if err := os.WriteFile(badRate, []byte("[[outputs.graphite_statsd]]\n  spool_replay_rate = -5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.conf")
	if err := os.WriteFile(empty, []byte("[agent]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args string
		want string
	}{
		{"", "-config FILE is required"},
		{"-config " + bad, bad + `:3: [[inputs.haproxy]]: unknown option "timeuot"`},
		{"-config " + empty, "no [[inputs.haproxy]] or [[outputs.graphite_statsd]]"},
		{"-config " + badSize, badSize + `:3: [[outputs.graphite_statsd]]: spool_limit: invalid size "ten"`},
		{"-config " + badRate, "spool_replay_rate: -5 is negative"},
		{"-config " + filepath.Join(dir, "missing.conf"), "missing.conf"},
		{"-nosuchflag", "flag provided but not defined: -nosuchflag"},
		{"-poll_interval 0s -config " + bad, "-poll_interval 0s: must be positive"},
		{"-config " + bad + " extra", `unexpected argument "extra"`},
		{"--backend h:99999::x --sockets /a.sock", `--backend "h:99999::x": port "99999"`},
		{"-sample-config inputs.nope", `-sample-config: unknown plugin "inputs.nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), strings.Fields(tt.args), strings.NewReader(""), &stdout, &stderr)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.want)
			}
		})
	}
}

func TestSampleConfigIsTheRootSampleConf(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-sample-config"}, nil, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	root, err := os.ReadFile("../../sample.conf")
	if err != nil {
		t.Fatal(err)
	}
	if stdout.String() != string(root) {
		t.Error("sample.conf differs from -sample-config: regenerate it with go run ./cmd/hap-monitor -sample-config > sample.conf")
	}
	for _, section := range []string{"[[inputs.haproxy]]", "[[outputs.graphite_statsd]]", "# [agent]", "metric_batch_size", "spool_dir", "include_fields"} {
		if !strings.Contains(stdout.String(), section) {
			t.Errorf("sample config lacks %s", section)
		}
	}
	if _, err := config.Parse(stdout.Bytes(), "sample.conf", nil); err != nil {
		t.Errorf("the sample config does not load: %v", err)
	}
}

func TestSampleConfigOfOnePlugin(t *testing.T) {
	for _, name := range []string{"inputs.haproxy", "outputs.graphite_statsd"} {
		for _, args := range [][]string{{"-sample-config", name}, {"-sample-config=" + name}} {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), args, nil, &stdout, &stderr); code != exitOK {
				t.Fatalf("%v: exit %d: %s", args, code, stderr.String())
			}
			if !strings.Contains(stdout.String(), "[["+name+"]]") || strings.Contains(stdout.String(), "[agent]") {
				t.Errorf("%v printed:\n%s", args, stdout.String())
			}
		}
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"-version"}, nil, &stdout, &bytes.Buffer{}); code != exitOK || !strings.HasPrefix(stdout.String(), "hap-monitor ") {
		t.Errorf("exit %d, %q", code, stdout.String())
	}
}

// TestAgentLogging checks [agent] debug, quiet and logfile: debug shows the
// one line naming the [agent] keys that mean nothing here, logfile takes
// the lines stderr would have had, quiet keeps errors only.
func TestAgentLogging(t *testing.T) {
	dir := t.TempDir()
	logfile := filepath.Join(dir, "hap-monitor.log")
	missing := filepath.Join(dir, "missing.sock")
	for _, tc := range []struct {
		name, agent    string
		stderr, inFile []string // substrings expected
		notIn          []string // substrings expected nowhere
	}{
		{"debug", "debug = true\n  statefile = \"/x\"", []string{"D! [agent]", "ignoring statefile", "E! [inputs.haproxy]"}, nil, nil},
		{"default level", "statefile = \"/x\"", []string{"E! [inputs.haproxy]"}, nil, []string{"D! "}},
		{"logfile", fmt.Sprintf("logfile = %q", logfile), nil, []string{"E! [inputs.haproxy]", "missing.sock"}, nil},
		{"quiet", "quiet = true\n  debug = false", []string{"E! "}, nil, []string{"D! ", "I! ", "W! "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(logfile)
			conf := filepath.Join(dir, "agent.conf")
			text := fmt.Sprintf("[agent]\n  %s\n[[inputs.haproxy]]\n  servers = [%q]\n", tc.agent, missing)
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), []string{"-config", conf, "-test"}, nil, &stdout, &stderr); code != exitRuntime {
				t.Fatalf("exit %d, want 1 (the socket is missing); stderr %s", code, stderr.String())
			}
			inFile, _ := os.ReadFile(logfile)
			for _, w := range tc.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q lacks %q", stderr.String(), w)
				}
			}
			for _, w := range tc.inFile {
				if !strings.Contains(string(inFile), w) {
					t.Errorf("logfile %q lacks %q", inFile, w)
				}
			}
			if tc.inFile != nil && strings.Contains(stderr.String(), "[inputs.haproxy]") {
				t.Errorf("with logfile the plugin's lines still reach stderr: %q", stderr.String())
			}
			for _, w := range tc.notIn {
				if strings.Contains(stderr.String(), w) || strings.Contains(string(inFile), w) {
					t.Errorf("%q logged: stderr %q, file %q", w, stderr.String(), inFile)
				}
			}
		})
	}
}

// TestAgentLogfileUnwritable checks that a logfile that cannot be opened is
// a configuration error naming the option, with nothing run.
func TestAgentLogfileUnwritable(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.conf")
	text := fmt.Sprintf("[agent]\n  logfile = %q\n[[inputs.haproxy]]\n  servers = [\"/run/nope.sock\"]\n", filepath.Join(dir, "no", "such", "dir", "log"))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-config", conf, "-test"}, nil, &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "[agent] logfile:") || stdout.Len() != 0 {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 naming [agent] logfile", code, stdout.String(), stderr.String())
	}
}
