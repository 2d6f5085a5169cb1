package haproxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
)

// readCertAnswer reads a recording of the certificate commands (see
// certsSuffix) as a gather does: the list and show ssl sni as optional
// commands of the line, then the details of each file listed.
func readCertAnswer(t *testing.T, h *HAProxy, answer string, ts time.Time) ([]telegraf.Metric, error) {
	t.Helper()
	acc := &shim.Accumulator{}
	g := &serverGather{h: h, ep: endpoint{kind: kindUnix, tag: testSocketTag, name: testSocketTag}, acc: acc, ts: ts, processNum: "1"}
	lr := newLineReader(strings.NewReader(answer))
	var errs []error
	for _, c := range []*command{showSSLCert, showSSLSNI} {
		if err := g.readOptional(c, lr, "1"); err != nil {
			errs = append(errs, err)
		}
	}
	if err := g.readCertDetails(lr, g.certFiles); err != nil {
		errs = append(errs, err)
	}
	ms, accErrs := acc.Drain()
	if len(accErrs) > 0 {
		t.Fatalf("accumulator errors: %v", accErrs)
	}
	if len(errs) > 0 {
		return ms, fmt.Errorf("%v", errs)
	}
	return ms, nil
}

// TestCertRecordings reads each release's recorded answers: three
// haproxy_cert metrics with the certificates' names, issuer, serial and
// dates as the answers say them, expiry and age of the gather's instant,
// and from 3.2 the frontend serving each (show ssl sni; earlier releases
// answer it with their usage text, which costs nothing).
func TestCertRecordings(t *testing.T) {
	for _, f := range releaseFacts {
		t.Run(f.version, func(t *testing.T) {
			answer := string(readTestdata(t, "haproxy-"+f.version+certsSuffix))
			ts := time.Date(2026, 12, 20, 12, 0, 0, 0, time.UTC)
			ms, err := readCertAnswer(t, newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), answer, ts)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != 3 {
				t.Fatalf("%d metrics, want the 3 certificates", len(ms))
			}
			hasSNI := f.version >= "3.2"
			for i, name := range []string{"a", "b", "c"} {
				m := ms[i]
				file, _ := m.GetTag("file")
				if !strings.HasSuffix(file, "/"+name+".pem") {
					t.Errorf("metric %d: file %q, want .../%s.pem", i, file, name)
				}
				// The dates as the answer says them.
				details := answer[strings.Index(answer, "Filename: "+file):]
				notAfter := between(details, "notAfter: ", "\n")
				end, err := time.Parse(certTimeLayout, notAfter)
				if err != nil {
					t.Fatal(err)
				}
				fields := m.Fields()
				if fields["enddate"] != end.Unix() || fields["expiry"] != end.Unix()-ts.Unix() {
					t.Errorf("%s: enddate %v expiry %v, want %d and %d (notAfter %s)", name, fields["enddate"], fields["expiry"], end.Unix(), end.Unix()-ts.Unix(), notAfter)
				}
				if s, ok := fields["startdate"].(int64); !ok || fields["age"] != ts.Unix()-s {
					t.Errorf("%s: startdate %v age %v", name, fields["startdate"], fields["age"])
				}
				tags := m.Tags()
				for k, want := range map[string]string{
					"common_name":        name + ".example.org",
					"issuer_common_name": "hap-monitor test CA",
					"status":             "used",
					"serial_number":      strings.ToLower(strings.TrimLeft(between(details, "Serial: ", "\n"), "0")),
					"process_num":        "1",
					"server":             testSocketTag,
				} {
					if tags[k] != want {
						t.Errorf("%s: tag %s = %q, want %q", name, k, tags[k], want)
					}
				}
				if !strings.HasPrefix(tags["san"], name+".example.org") {
					t.Errorf("%s: san %q", name, tags["san"])
				}
				fe, has := tags["frontends"]
				wantFE := map[string]string{"a": "fe_tls/", "b": "fe_tls/", "c": "fe_tls2/"}[name]
				if has != hasSNI || has && !strings.HasPrefix(fe, wantFE) {
					t.Errorf("%s: frontends %q (given: %v), want one bind of %s on 3.2 and later", name, fe, has, wantFE)
				}
			}
			if v := ms[2].Fields()["expiry"].(int64); v >= 0 {
				t.Errorf("the expired certificate's expiry is %d", v)
			}
		})
	}
}

// between returns what s has between the first from and the next to.
func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(rest, to)
	return v
}

// TestCertDetailFaults: an answer cut short, a date that is not one, a
// file that is not in the answer: each reported with the file, the
// files after a bad one still read while the answer is in step.
func TestCertDetailFaults(t *testing.T) {
	good := func(file, notAfter string) string {
		return "Filename: " + file + "\nStatus: Used\nSerial: 00AB\nnotBefore: Dec  1 00:00:00 2026 GMT\nnotAfter: " + notAfter +
			"\nSubject Alternative Name: DNS:x.example.org, IP Address:127.0.0.1, email:a@b.c\nSubject: /C=FR/CN=x.example.org/O=x\nIssuer: /CN=ca\n\n"
	}
	tests := []struct {
		name   string
		answer string
		certs  int
		err    string
	}{
		{"two good", good("/a.pem", "Jan  6 22:37:36 2027 GMT") + good("/b.pem", "Feb 16 00:00:00 2027 GMT"), 2, ""},
		{"a bad date, then a good one", good("/a.pem", "soon") + good("/b.pem", "Feb 16 00:00:00 2027 GMT"), 1,
			`show ssl cert /a.pem: line 5: notAfter "soon" is not a date`},
		{"no dates", "Filename: /a.pem\nStatus: Used\n\n" + good("/b.pem", "Feb 16 00:00:00 2027 GMT"), 1, "show ssl cert /a.pem: no Filename, notBefore or notAfter line"},
		{"cut in the second", good("/a.pem", "Jan  6 22:37:36 2027 GMT") + "Filename: /b.pem\nStat", 1, "show ssl cert /b.pem: answer truncated: input ended inside line 2"},
		{"no answer for the second", good("/a.pem", "Jan  6 22:37:36 2027 GMT"), 1, "show ssl cert /b.pem: answer truncated: empty answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc := &shim.Accumulator{}
			g := &serverGather{h: newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), ep: endpoint{tag: testSocketTag}, acc: acc, ts: time.Unix(1790000000, 0)}
			err := g.readCertDetails(newLineReader(strings.NewReader(tt.answer)), []string{"/a.pem", "/b.pem"})
			ms, _ := acc.Drain()
			if len(ms) != tt.certs {
				t.Errorf("%d metrics, want %d", len(ms), tt.certs)
			}
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("err = %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("err = %v, want it to say %q", err, tt.err)
			}
			if len(ms) > 0 {
				tags := ms[0].Tags()
				if tags["san"] != "x.example.org,a@b.c,127.0.0.1" || tags["common_name"] != "x.example.org" || tags["serial_number"] != "ab" {
					t.Errorf("tags %v", tags)
				}
			}
		})
	}
}

// TestCertList: the files listed, uncommitted transactions ("*file") and
// names that cannot go back on a command line left out.
func TestCertList(t *testing.T) {
	acc := &shim.Accumulator{}
	g := &serverGather{h: newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), ep: endpoint{tag: testSocketTag}, acc: acc}
	err := g.readCertList(newLineReader(strings.NewReader("# transaction\n*/etc/a.pem\n# filename\n/etc/a.pem\n/etc/b;c.pem\n/etc/d.pem\n\n")), "1")
	if want := []string{"/etc/a.pem", "/etc/d.pem"}; !slices.Equal(g.certFiles, want) {
		t.Errorf("files %q, want %q", g.certFiles, want)
	}
	if err == nil || !strings.Contains(err.Error(), `line 5 left out`) {
		t.Errorf("err = %v, want the name with a ; reported", err)
	}
}

// TestCertDetailLines: the details are asked in lines HAProxy's command
// buffer takes, every file once, in order.
func TestCertDetailLines(t *testing.T) {
	var files []string
	for i := range 2000 {
		files = append(files, fmt.Sprintf("/etc/haproxy/certs/site-%04d.example.org.pem", i))
	}
	lines := certDetailLines(files)
	var all []string
	for _, l := range lines {
		size := 0
		for _, f := range l {
			size += len("show ssl cert ;") + len(f)
		}
		if size > detailLineBytes {
			t.Errorf("a line of %d bytes, over %d", size, detailLineBytes)
		}
		all = append(all, l...)
	}
	if !slices.Equal(all, files) {
		t.Errorf("the lines hold %d files, want the %d in order", len(all), len(files))
	}
	t.Logf("2000 files in %d lines", len(lines))
	if lines := certDetailLines(nil); len(lines) != 0 {
		t.Errorf("no files: %d lines", len(lines))
	}
}
