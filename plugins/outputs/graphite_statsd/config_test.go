package graphite_statsd

import (
	"io"
	"strings"
	"testing"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/contract"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

func TestSampleConfigLoads(t *testing.T) {
	sink := logger.NewSink(io.Discard, telegraf.Info)
	cfg, err := config.Parse([]byte(sampleConfig), "sample.conf", sink)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Outputs[0].Output.(*GraphiteStatsd)
	if !slicesEqual(o.Templates, contract.DefaultTemplates) || o.Servers[0] != "localhost:2003" {
		t.Fatalf("sample config: templates %q servers %q", o.Templates, o.Servers)
	}
	// Every option of the sample, uncommented, is known.
	var b strings.Builder
	for _, line := range strings.Split(sampleConfig, "\n") {
		s := strings.TrimSpace(line)
		rest := strings.TrimSpace(strings.TrimPrefix(s, "#"))
		if strings.HasPrefix(s, "# ") && (strings.Contains(s, " = ") || strings.HasPrefix(rest, `"`) || rest == "]") {
			line = strings.Replace(line, "# ", "", 1)
		}
		b.WriteString(line + "\n")
	}
	text := strings.Replace(b.String(), `tls_ca = "/etc/telegraf/ca.pem"`, "", 1)
	text = strings.NewReplacer(`tls_cert = "/etc/telegraf/cert.pem"`, "", `tls_key = "/etc/telegraf/key.pem"`, "").Replace(text)
	if _, err := config.Parse([]byte(text), "sample.conf", sink); err != nil {
		t.Fatalf("sample with its options uncommented: %v", err)
	}
	_, err = config.Parse([]byte("[[outputs.graphite_statsd]]\n  servers = [\"carbon\"]\n"), "bad.conf", sink)
	if err == nil || !strings.Contains(err.Error(), "servers[0]") {
		t.Fatalf("a server without a port: %v", err)
	}
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}
