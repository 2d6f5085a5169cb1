package haproxy

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
)

// addSeeds adds every recorded answer and a few broken ones to the corpus.
func addSeeds(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "haproxy-*[tv]"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	for _, s := range []string{"", "\n", "# \n", "# a,b,\n\"x\n", "# pxname,type,status,\nx,9,UP,\n\n", "Name: x\n\n# pxname,svname,type,status,\n\"a\"\"b\",\"c,7,\"\n\n"} {
		f.Add([]byte(s))
	}
}

func FuzzParseStat(f *testing.F) {
	addSeeds(f)
	h := &HAProxy{Servers: []string{testSocketTag}, IncludeFields: []string{"*"}}
	if err := h.Init(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, page := range []bool{false, true} {
			acc := &shim.Accumulator{}
			g := &serverGather{h: h, ep: endpoint{tag: testSocketTag}, acc: acc, ts: time.Unix(0, 0)}
			lr := newLineReader(bytes.NewReader(data))
			_, _ = g.readStat(lr, "", page) // any error is fine, a panic is not
			ms, _ := acc.Drain()
			for _, m := range ms {
				if len(m.FieldList()) > len(data) {
					t.Fatalf("%d fields from %d bytes", len(m.FieldList()), len(data))
				}
			}
		}
	})
}

func FuzzParseInfo(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ans, _ := parseInfo(newLineReader(bytes.NewReader(data)))
		if len(ans.Fields) > maxInfoLines {
			t.Fatalf("%d info fields, more than the %d lines read", len(ans.Fields), maxInfoLines)
		}
	})
}

// FuzzParseOptional reads any answer as the optional commands' (see
// readCertAnswer): the recordings of each release are its seeds.
func FuzzParseOptional(f *testing.F) {
	addSeeds(f)
	h := &HAProxy{Servers: []string{testSocketTag}, Log: logger.New(logger.NewSink(io.Discard, telegraf.Error), "inputs.haproxy")}
	if err := h.Init(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		acc := &shim.Accumulator{}
		g := &serverGather{h: h, ep: endpoint{tag: testSocketTag}, acc: acc, ts: time.Unix(0, 0)}
		lr := newLineReader(bytes.NewReader(data))
		for _, c := range []*command{showSSLCert, showSSLSNI, showOCSPUpdates, acmeStatus, showResolvers, showPeers, showTable} {
			_ = g.readOptional(c, lr, "1") // any error is fine, a panic is not
		}
		_, _ = g.readCertDetails(lr, g.certs.files)
		g.pid = 1
		_ = g.emitCerts(nil)
		ms, _ := acc.Drain()
		if n := count(ms, "haproxy_cert"); n > len(g.certs.files) {
			t.Fatalf("%d certificates from %d files listed", n, len(g.certs.files))
		}
	})
}
