package haproxy

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/contract"
	"github.com/hap-monitor/hap-monitor/plugins/common/lineproto"
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
	locked, err := g.readCertDetails(lr, g.certs.files)
	if err != nil {
		errs = append(errs, err)
	}
	if len(locked) > 0 {
		errs = append(errs, fmt.Errorf("refused for the lock: %v", locked))
	}
	g.pid = 1
	if err := g.emitCerts(nil); err != nil {
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
// file that is not in the answer, HAProxy's refusal: each reported with
// the file, the files after a bad one still read while the answer is in
// step; a refusal for the certificates' lock is no error, but the file
// is returned to be asked again.
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
		locked string
	}{
		{"two good", good("/a.pem", "Jan  6 22:37:36 2027 GMT") + good("/b.pem", "Feb 16 00:00:00 2027 GMT"), 2, "", ""},
		{"a bad date, then a good one", good("/a.pem", "soon") + good("/b.pem", "Feb 16 00:00:00 2027 GMT"), 1,
			`show ssl cert /a.pem: line 5: notAfter "soon" is not a date`, ""},
		{"no dates", "Filename: /a.pem\nStatus: Used\n\n" + good("/b.pem", "Feb 16 00:00:00 2027 GMT"), 1, "show ssl cert /a.pem: no Filename, notBefore or notAfter line", ""},
		{"cut in the second", good("/a.pem", "Jan  6 22:37:36 2027 GMT") + "Filename: /b.pem\nStat", 1, "show ssl cert /b.pem: answer truncated: input ended inside line 2", ""},
		{"no answer for the second", good("/a.pem", "Jan  6 22:37:36 2027 GMT"), 1, "show ssl cert /b.pem: answer truncated: empty answer", ""},
		{"the first locked", "Can't show!\nOperations on certificates are currently locked!\n\n" + good("/b.pem", "Feb 16 00:00:00 2027 GMT"), 1, "", "/a.pem"},
		{"the first refused otherwise", "Can't display the certificate: Not found!\n\n" + good("/b.pem", "Feb 16 00:00:00 2027 GMT"), 1,
			`show ssl cert /a.pem: HAProxy says "Can't display the certificate: Not found!"`, ""},
		{"a refusal cut short", good("/a.pem", "Jan  6 22:37:36 2027 GMT") + "Can't show!\nOperations", 1, `show ssl cert /b.pem: HAProxy's refusal "Can't show!" cut short`, ""},
		{"a refusal without an end", good("/a.pem", "Jan  6 22:37:36 2027 GMT") + "Can't show!\n" + strings.Repeat("why\n", 30) + "\n", 1,
			`show ssl cert /b.pem: HAProxy's refusal "Can't show!": no end within 20 lines`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc := &shim.Accumulator{}
			g := &serverGather{h: newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), ep: endpoint{tag: testSocketTag}, acc: acc, ts: time.Unix(1790000000, 0)}
			files := []string{"/a.pem", "/b.pem"}
			locked, err := g.readCertDetails(newLineReader(strings.NewReader(tt.answer)), files)
			if got := strings.Join(locked, ","); got != tt.locked {
				t.Errorf("refused for the lock: %q, want %q", got, tt.locked)
			}
			g.certs.files, g.pid = files, 1
			if err := g.emitCerts(nil); err != nil {
				t.Fatal(err)
			}
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
	if want := []string{"/etc/a.pem", "/etc/d.pem"}; !slices.Equal(g.certs.files, want) {
		t.Errorf("files %q, want %q", g.certs.files, want)
	}
	if err == nil || !strings.Contains(err.Error(), `line 5 left out`) {
		t.Errorf("err = %v, want the name with a ; reported", err)
	}
	// Another answer (a fake's, an error) is no list: nothing is asked.
	g = &serverGather{h: g.h, ep: g.ep, acc: acc}
	err = g.readCertList(newLineReader(strings.NewReader("Name: HAProxy\nVersion: 2.6\n\n")), "1")
	if len(g.certs.files) != 0 || err == nil || !strings.Contains(err.Error(), "not show ssl cert's list") {
		t.Errorf("files %q, err %v; want none and the answer named", g.certs.files, err)
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

// TestCertDetailsKept: a long-running process asks a certificate's
// details and frontends once per certificate_details_interval, and again
// at once when another process answers (a reload, a restart); expiry is
// of each gather all the same, and the frontends stay.
func TestCertDetailsKept(t *testing.T) {
	rec := strings.Split(strings.TrimSuffix(string(readTestdata(t, "haproxy-3.4.7"+certsSuffix)), "\n\n"), "\n\n")
	if len(rec) != 5 {
		t.Fatalf("the recording has %d answers, want the list, show ssl sni and 3 files' details", len(rec))
	}
	list, sni, details := rec[0]+"\n\n", rec[1]+"\n\n", map[string]string{}
	for _, d := range rec[2:] {
		details[between(d, "Filename: ", "\n")] = d + "\n\n"
	}
	answer := string(readTestdata(t, "haproxy-3.4.7.txt"))
	info, rest, _ := strings.Cut(answer, "\n\n")
	stat, _, _ := strings.Cut(rest, "\n\n")
	var mu sync.Mutex
	pid := "21858"
	fake := testbed.NewFakeSocket(t, func(conn net.Conn, line string) {
		mu.Lock()
		p := pid
		mu.Unlock()
		for _, cmd := range strings.Split(strings.TrimSpace(line), ";") {
			part := "\n"
			switch {
			case cmd == "show info":
				part = strings.Replace(info, "Pid: 21858\n", "Pid: "+p+"\n", 1) + "\n\n"
			case strings.HasPrefix(cmd, "show stat"):
				part = stat + "\n\n"
			case cmd == "show ssl cert":
				part = list
			case cmd == "show ssl sni":
				part = sni
			case strings.HasPrefix(cmd, "show ssl cert "):
				part = details[strings.TrimPrefix(cmd, "show ssl cert ")]
			case cmd == "acme status": // no certificate renewed by HAProxy
				part = "# certificate\tsection\tstate\texpiration date (UTC)\texpires in\tscheduled date (UTC)\tscheduled in\n\n"
			}
			if _, err := conn.Write([]byte(part)); err != nil {
				return
			}
		}
	})
	files := strings.Split(strings.TrimPrefix(strings.TrimSpace(list), "# filename\n"), "\n")
	a := files[0]
	// gatherAsking gathers h once and returns the files whose details it
	// asked, whether it asked show ssl sni, and each file's expiry.
	gatherAsking := func(h *HAProxy) (asked []string, sniAsked bool, expiry map[string]int64) {
		t.Helper()
		before := len(fake.Commands())
		ms, errs := gather(t, h)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		for _, l := range fake.Commands()[before:] {
			for _, c := range strings.Split(strings.TrimSpace(l), ";") {
				if f, ok := strings.CutPrefix(c, "show ssl cert "); ok {
					asked = append(asked, f)
				}
				sniAsked = sniAsked || c == "show ssl sni"
			}
		}
		expiry = map[string]int64{}
		for _, m := range ms {
			if m.Name() == "haproxy_cert" {
				f, _ := m.GetTag("file")
				expiry[f] = m.Fields()["expiry"].(int64)
				if fe, _ := m.GetTag("frontends"); !strings.HasPrefix(fe, "fe_tls") {
					t.Errorf("%s: frontends %q", f, fe)
				}
			}
		}
		if len(expiry) != 3 {
			t.Errorf("%d certificates, want 3", len(expiry))
		}
		slices.Sort(asked)
		return asked, sniAsked, expiry
	}
	h := newPlugin(t, &HAProxy{Servers: []string{fake.Path}, CertificateDetailsInterval: config.Duration(time.Hour)})
	if asked, sniAsked, _ := gatherAsking(h); !slices.Equal(asked, files) || !sniAsked {
		t.Errorf("first gather asked the details of %q and show ssl sni %v, want every file's and show ssl sni", asked, sniAsked)
	}
	asked, sniAsked, first := gatherAsking(h)
	if len(asked) != 0 || sniAsked {
		t.Errorf("a gather within the interval asked the details of %q and show ssl sni %v, want neither", asked, sniAsked)
	}
	time.Sleep(1100 * time.Millisecond) // the next second: expiry goes down
	if asked, _, later := gatherAsking(h); len(asked) != 0 || later[a] >= first[a] {
		t.Errorf("later gather: asked %q, expiry of %s %d then %d: want none asked and expiry going down", asked, a, first[a], later[a])
	}
	// Another process: every file asked again.
	mu.Lock()
	pid = "9001"
	mu.Unlock()
	if asked, sniAsked, _ := gatherAsking(h); !slices.Equal(asked, files) || !sniAsked {
		t.Errorf("after a restart: asked %q and show ssl sni %v, want every file's and show ssl sni", asked, sniAsked)
	}
	// Interval 0: every gather asks every file.
	every := newPlugin(t, &HAProxy{Servers: []string{fake.Path}})
	for range 2 {
		if asked, _, _ := gatherAsking(every); !slices.Equal(asked, files) {
			t.Errorf("interval 0: asked %q, want every file's at each gather", asked)
		}
	}
}

// BenchmarkCerts reads 2,000 certificates' list and details, as HAProxy
// 3.4 words them, and emits their metrics: the input's side of a gather
// of haproxy_cert.
func BenchmarkCerts(b *testing.B) {
	const n = 2000
	var list, details strings.Builder
	list.WriteString("# filename\n")
	var files []string
	for i := range n {
		f := fmt.Sprintf("/etc/haproxy/certs/site-%04d.example.org.pem", i)
		files = append(files, f)
		list.WriteString(f + "\n")
		fmt.Fprintf(&details, "Filename: %s\nCrt filename: %s\nKey filename: %s\nOCSP filename: %s.ocsp\nSCTL filename: %s.sctl\n"+
			"Option: ocsp-update off\nOption: jwt off\nStatus: Used\nSerial: 0600005EED%04d\nnotBefore: Dec  6 23:38:17 2026 GMT\n"+
			"notAfter: Jan  6 23:38:17 2027 GMT\nSubject Alternative Name: DNS:site-%04d.example.org, DNS:www.site-%04d.example.org\n"+
			"Algorithm: EC256\nSHA1 FingerPrint: 42017E1C3B1422BAFFEDA72FCB64702124BF11F5\nSubject: /O=hap-monitor tests/CN=site-%04d.example.org\n"+
			"Issuer: /CN=hap-monitor test CA\nOCSP Response Key: \n\n", f, f, f, f, f, i, i, i, i)
	}
	list.WriteString("\n")
	h := newPlugin(b, &HAProxy{Servers: []string{testSocketTag}})
	b.ReportAllocs()
	for b.Loop() {
		acc := &shim.Accumulator{}
		g := &serverGather{h: h, ep: endpoint{tag: testSocketTag}, acc: acc, ts: time.Unix(1790000000, 0), pid: 1, processNum: "1"}
		if err := g.readCertList(newLineReader(strings.NewReader(list.String())), ""); err != nil {
			b.Fatal(err)
		}
		if _, err := g.readCertDetails(newLineReader(strings.NewReader(details.String())), files); err != nil {
			b.Fatal(err)
		}
		if err := g.emitCerts(nil); err != nil {
			b.Fatal(err)
		}
		if ms, _ := acc.Drain(); len(ms) != n {
			b.Fatalf("%d metrics", len(ms))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/cert")
}

// TestCertCacheForgetsIdleSockets: a socket no gather stored for an hour
// (a worker gone after a reload) is forgotten.
func TestCertCacheForgetsIdleSockets(t *testing.T) {
	cc := newCertCache()
	t0 := time.Unix(1790000000, 0)
	c := map[string]certDetails{"/a.pem": {file: "/a.pem"}}
	cc.store("master:/m.sock, worker pid 1 (old1)", 1, []string{"/a.pem"}, c, nil, t0)
	cc.store("/admin.sock", 2, []string{"/a.pem"}, c, nil, t0.Add(30*time.Minute))
	cc.store("/admin.sock", 2, []string{"/a.pem"}, c, nil, t0.Add(61*time.Minute))
	if _, ok := cc.sockets["master:/m.sock, worker pid 1 (old1)"]; ok || len(cc.sockets) != 1 {
		t.Errorf("sockets kept: %v, want the admin socket's alone", slices.Collect(maps.Keys(cc.sockets)))
	}
}

// TestSNIFaults: a row of show ssl sni without its columns is reported;
// the others give each file its frontends, each once.
func TestSNIFaults(t *testing.T) {
	answer := "# Frontend/Bind\tSNI\tNegative Filter\tType\tFilename\tNotAfter\tNotBefore\n" +
		"fe/h.cfg:1\ta.org\t-\tecdsa\t/a.pem\tJan  6 22:37:36 2027 GMT\tDec  7 22:37:36 2026 GMT\n" +
		"fe/h.cfg:1\twww.a.org\t-\tecdsa\t/a.pem\tJan  6 22:37:36 2027 GMT\tDec  7 22:37:36 2026 GMT\n" +
		"fe2/h.cfg:9\ta.org\t-\tecdsa\t/a.pem\tJan  6 22:37:36 2027 GMT\tDec  7 22:37:36 2026 GMT\n" +
		"fe/h.cfg:1\tb.org\n\n"
	g := &serverGather{h: newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), ep: endpoint{tag: testSocketTag}, acc: &shim.Accumulator{}}
	err := g.readSNI(newLineReader(strings.NewReader(answer)), "")
	if err == nil || !strings.Contains(err.Error(), "line 5 left out: not the 7 tab-separated columns") {
		t.Errorf("err = %v", err)
	}
	if got := g.certs.frontends["/a.pem"]; got != "fe/h.cfg:1,fe2/h.cfg:9" {
		t.Errorf("frontends of /a.pem %q", got)
	}
}

// BenchmarkCertsKept is a long-running process's gather of 2,000
// certificates whose details it keeps: the list read, each metric made
// from the kept details and frontends and written as line protocol, as
// the execd input writes it.
func BenchmarkCertsKept(b *testing.B) {
	const n = 2000
	var list strings.Builder
	list.WriteString("# filename\n")
	kept := make(map[string]certDetails, n)
	frontends := make(map[string]string, n)
	notBefore, notAfter := time.Date(2026, 12, 6, 23, 38, 17, 0, time.UTC), time.Date(2027, 1, 6, 23, 38, 17, 0, time.UTC)
	var files []string
	for i := range n {
		f := fmt.Sprintf("/etc/haproxy/certs/site-%04d.example.org.pem", i)
		files = append(files, f)
		list.WriteString(f + "\n")
		kept[f] = certDetails{file: f, status: "used", serial: fmt.Sprintf("600005eed%04d", i), notBefore: notBefore, notAfter: notAfter,
			san: fmt.Sprintf("site-%04d.example.org,www.site-%04d.example.org", i, i), commonName: fmt.Sprintf("site-%04d.example.org", i),
			issuerCommonName: "hap-monitor test CA"}
		frontends[f] = "fe_tls//etc/haproxy/haproxy.cfg:12"
	}
	list.WriteString("\n")
	h := newPlugin(b, &HAProxy{Servers: []string{testSocketTag}, CertificateDetailsInterval: config.Duration(time.Hour)})
	ts := time.Unix(1790000000, 0)
	h.certCache.store(testSocketTag, 1, files, kept, frontends, ts)
	var out bytes.Buffer
	enc := lineproto.NewEncoder(&out)
	b.ReportAllocs()
	for b.Loop() {
		acc := &shim.Accumulator{}
		g := &serverGather{h: h, ep: endpoint{tag: testSocketTag, name: testSocketTag}, acc: acc, ts: ts, pid: 1, processNum: "1"}
		if err := g.readCertList(newLineReader(strings.NewReader(list.String())), ""); err != nil {
			b.Fatal(err)
		}
		var ask []string
		g.certs.cached, ask = h.certCache.lookup(g.ep.name, g.certs.files, g.ts, time.Hour)
		if len(ask) != 0 {
			b.Fatalf("%d files to ask", len(ask))
		}
		if err := g.emitCerts(nil); err != nil {
			b.Fatal(err)
		}
		ms, _ := acc.Drain()
		if len(ms) != n {
			b.Fatalf("%d metrics", len(ms))
		}
		out.Reset()
		for _, m := range ms {
			if err := enc.Encode(m); err != nil {
				b.Fatal(err)
			}
			contract.Release(m) // as the execd input does once it is written
		}
		if err := enc.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/cert")
	b.ReportMetric(float64(out.Len())/n, "bytes/cert")
}
