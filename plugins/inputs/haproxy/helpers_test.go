package haproxy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
)

// testSocketTag is the server tag given to answers read from files.
const testSocketTag = "/run/haproxy/admin.sock"

// newPlugin returns an initialised plugin, failing the test on error.
func newPlugin(t testing.TB, h *HAProxy) *HAProxy {
	t.Helper()
	if h.Log == nil {
		h.Log = logger.New(logger.NewSink(&testbed.SyncBuffer{}, telegraf.Debug), "inputs.haproxy")
	}
	if err := h.Init(); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return h
}

// readAnswer reads a recorded answer as if it came from a unix socket
// (page false: "show info" then "show stat", or "show stat" alone when the
// data starts with its header) or from a stats page (page true).
func readAnswer(t testing.TB, h *HAProxy, data []byte, page bool) ([]telegraf.Metric, error) {
	t.Helper()
	acc := &shim.Accumulator{}
	g := &serverGather{h: h, ep: endpoint{kind: kindUnix, tag: testSocketTag, name: testSocketTag}, acc: acc, ts: time.Unix(1700000000, 0),
		asked: []*command{showTable}} // the recordings are of show info;show stat;show table
	lr := newLineReader(bytes.NewReader(data))
	var err error
	switch {
	case page:
		err = g.readPage(lr)
	case bytes.HasPrefix(data, []byte("# ")):
		_, err = g.readStat(lr, "1", false)
	default:
		err = g.readSocket(lr)
	}
	ms, errs := acc.Drain()
	if len(errs) > 0 {
		t.Fatalf("unexpected accumulator errors: %v", errs)
	}
	return ms, err
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// find returns the metric of measurement name with the given tags.
func find(ms []telegraf.Metric, name string, tags map[string]string) telegraf.Metric {
	for _, m := range ms {
		if m.Name() != name {
			continue
		}
		ok := true
		for k, v := range tags {
			if got, has := m.GetTag(k); !has || got != v {
				ok = false
				break
			}
		}
		if ok {
			return m
		}
	}
	return nil
}

func row(ms []telegraf.Metric, proxy, sv string) telegraf.Metric {
	return find(ms, "haproxy", map[string]string{"proxy": proxy, "sv": sv})
}

func count(ms []telegraf.Metric, name string) int {
	n := 0
	for _, m := range ms {
		if m.Name() == name {
			n++
		}
	}
	return n
}

// checkStatus asserts the one-hot status fields of m: every state of
// vocab present, want at 1, the others at 0, all int64.
func checkStatus(t *testing.T, m telegraf.Metric, vocab []string, want string) {
	t.Helper()
	for _, s := range vocab {
		v, ok := m.GetField("status." + s)
		if !ok {
			t.Errorf("%s: field status.%s missing", describeMetric(m), s)
			continue
		}
		exp := int64(0)
		if s == want {
			exp = 1
		}
		if v != exp {
			t.Errorf("%s: status.%s = %#v, want %d", describeMetric(m), s, v, exp)
		}
	}
	for _, f := range m.FieldList() {
		if strings.HasPrefix(f.Key, "status.") && !containsState(vocab, strings.TrimPrefix(f.Key, "status.")) {
			t.Errorf("%s: field %s is outside the row type's vocabulary", describeMetric(m), f.Key)
		}
	}
}

func describeMetric(m telegraf.Metric) string {
	p, _ := m.GetTag("proxy")
	s, _ := m.GetTag("sv")
	return m.Name() + "/" + p + "/" + s
}

// lineOptional is what the line asks after show stat: the optional
// commands asked on it, each after a ";".
func lineOptional() string {
	var b strings.Builder
	for _, c := range optionalCommands {
		if c.place == onLine {
			b.WriteString(";" + c.text)
		}
	}
	return b.String()
}

// certLine is the first line of the certificates' connection: the
// commands asked there, as the table places them.
func certLine() string {
	var own []*command
	for _, c := range optionalCommands {
		if c.place == onOwn {
			own = append(own, c)
		}
	}
	return joinCommands(own)
}
