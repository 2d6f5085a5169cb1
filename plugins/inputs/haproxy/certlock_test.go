package haproxy

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/config"
)

// lockedHAProxy is a fake HAProxy 3.4 with the recorded certificates and
// ACME status, whose certificate commands are refused for the lock
// (acme status: an empty answer) while the test says so.
type lockedHAProxy struct {
	*testbed.FakeSocket
	mu      sync.Mutex
	refuse  map[string]int // command -> how many more times it is refused
	refused map[string]int // command -> how many times it was refused
	acme    string         // the answer to acme status
}

func newLockedHAProxy(t *testing.T) *lockedHAProxy {
	rec := strings.Split(strings.TrimSuffix(string(readTestdata(t, "haproxy-3.4.7"+certsSuffix)), "\n\n"), "\n\n")
	list, sni, details := rec[0]+"\n\n", rec[1]+"\n\n", map[string]string{}
	for _, d := range rec[2:] {
		details[between(d, "Filename: ", "\n")] = d + "\n\n"
	}
	info, rest, _ := strings.Cut(string(readTestdata(t, "haproxy-3.4.7.txt")), "\n\n")
	stat, _, _ := strings.Cut(rest, "\n\n")
	f := &lockedHAProxy{refuse: map[string]int{}, refused: map[string]int{}, acme: string(readTestdata(t, "haproxy-3.4.7"+acmeSuffix))}
	f.FakeSocket = testbed.NewFakeSocket(t, func(conn net.Conn, line string) {
		for _, cmd := range strings.Split(strings.TrimSpace(line), ";") {
			part := "\n"
			kind := cmd
			if strings.HasPrefix(cmd, "show ssl cert ") {
				kind = "show ssl cert <file>"
			}
			f.mu.Lock()
			locked := f.refuse[kind] > 0
			if locked {
				f.refuse[kind]--
				f.refused[kind]++
			}
			acme := f.acme
			f.mu.Unlock()
			switch {
			case cmd == "show info":
				part = info + "\n\n"
			case strings.HasPrefix(cmd, "show stat"):
				part = stat + "\n\n"
			case locked && cmd == "acme status":
				part = "\n"
			case locked && cmd == "show ssl sni":
				part = "Can't list SNIs\nOperations on certificates are currently locked!\n\n"
			case locked:
				part = "Can't show!\nOperations on certificates are currently locked!\n\n"
			case cmd == "show ssl cert":
				part = list
			case cmd == "show ssl sni":
				part = sni
			case cmd == "acme status":
				part = acme
			case kind == "show ssl cert <file>":
				part = details[strings.TrimPrefix(cmd, "show ssl cert ")]
			}
			if _, err := conn.Write([]byte(part)); err != nil {
				return
			}
		}
	})
	return f
}

// setACME makes acme status answer the renewals rows (tab-separated).
func (f *lockedHAProxy) setACME(rows ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acme = "# certificate\tsection\tstate\texpiration date (UTC)\texpires in\tscheduled date (UTC)\tscheduled in\n" + strings.Join(rows, "\n") + "\n\n"
}

// lock refuses each command kind n times from now.
func (f *lockedHAProxy) lock(n int, kinds ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range kinds {
		f.refuse[k] = n
		f.refused[k] = 0
	}
}

func (f *lockedHAProxy) timesRefused(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused[kind]
}

// TestCertificatesLocked: HAProxy refuses its certificate commands while
// another operation holds their lock (a commit, a renewal). Refused a
// few times, each is asked again and nothing is lost; refused at every
// try, the refusal is reported as the lock, after certLockTries tries,
// every other metric is emitted, and a long-running process gives the
// certificates it kept.
func TestCertificatesLocked(t *testing.T) {
	all := []string{"show ssl cert", "show ssl sni", "show ssl cert <file>", "acme status"}
	gatherCounts := func(t *testing.T, h *HAProxy) (certs, acme int, errs []error) {
		t.Helper()
		ms, errs := gather(t, h)
		if n := count(ms, "haproxy"); n == 0 || count(ms, "haproxy_info") != 1 {
			t.Errorf("haproxy_info and haproxy metrics lost: %d haproxy", n)
		}
		for _, m := range ms {
			if p, _ := m.GetTag("process_num"); m.Name() == "haproxy_acme" && p != "1" {
				t.Errorf("haproxy_acme without show info's process_num: %v", m.Tags())
			}
		}
		return count(ms, "haproxy_cert"), count(ms, "haproxy_acme"), errs
	}

	t.Run("an empty answer", func(t *testing.T) {
		// show ssl cert's answer when HAProxy holds no certificate: no
		// refusal; acme status's when the lock was held.
		g := &serverGather{h: newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), ep: endpoint{tag: testSocketTag}}
		if err := g.readOptional(showSSLCert, newLineReader(strings.NewReader("\n")), "1"); err != nil || len(g.certs.files) != 0 {
			t.Errorf("show ssl cert: %v, files %q; want no error and no files", err, g.certs.files)
		}
		if err := g.readOptional(acmeStatus, newLineReader(strings.NewReader("\n")), "1"); !errors.Is(err, errCertsLocked) {
			t.Errorf("acme status: %v, want the lock", err)
		}
	})

	t.Run("refused a few times", func(t *testing.T) {
		fake := newLockedHAProxy(t)
		h := newPlugin(t, &HAProxy{Servers: []string{fake.Path}})
		fake.lock(certLockTries-1, all...)
		certs, acme, errs := gatherCounts(t, h)
		if len(errs) > 0 || certs != 3 || acme != 2 {
			t.Errorf("errors %v, %d haproxy_cert and %d haproxy_acme; want none, the 3 certificates and the 2 renewals", errs, certs, acme)
		}
		for _, k := range all {
			if n := fake.timesRefused(k); n != certLockTries-1 {
				t.Errorf("%s refused %d times, want %d", k, n, certLockTries-1)
			}
		}
	})

	t.Run("refused at every try", func(t *testing.T) {
		fake := newLockedHAProxy(t)
		h := newPlugin(t, &HAProxy{Servers: []string{fake.Path}, CertificateDetailsInterval: config.Duration(time.Hour)})
		if certs, _, errs := gatherCounts(t, h); len(errs) > 0 || certs != 3 {
			t.Fatalf("unlocked: errors %v, %d certificates", errs, certs)
		}
		fake.lock(1000, "show ssl cert", "acme status")
		certs, acme, errs := gatherCounts(t, h)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "show ssl cert, acme status: HAProxy's certificates were locked by another operation") ||
			!strings.Contains(errs[0].Error(), fake.Path) {
			t.Errorf("errors %v, want one naming the socket, both commands and the lock", errs)
		}
		if certs != 3 || acme != 0 {
			t.Errorf("%d haproxy_cert, %d haproxy_acme; want the 3 kept and no renewals", certs, acme)
		}
		if n := fake.timesRefused("show ssl cert"); n != certLockTries {
			t.Errorf("show ssl cert asked %d times, want %d", n, certLockTries)
		}
		// A details' refusal: the file is named.
		fake.lock(0, "show ssl cert", "acme status")
		fake.lock(1000, "show ssl cert <file>")
		h.CertificateDetailsInterval = 0
		_, _, errs = gatherCounts(t, h)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "show ssl cert of 3 files (") {
			t.Errorf("errors %v, want the 3 files' details reported", errs)
		}
		// The frontends' refusal: the details and the certificates kept.
		fake.lock(0, "show ssl cert <file>")
		fake.lock(1000, "show ssl sni")
		certs, _, errs = gatherCounts(t, h)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "show ssl sni: HAProxy's certificates were locked") || certs != 3 {
			t.Errorf("errors %v, %d certificates; want show ssl sni's refusal reported and the 3 certificates", errs, certs)
		}
	})
}

// TestCertRenewedByHAProxyAskedAgain: a long-running process keeps a
// certificate's details for certificate_details_interval, but asks them
// again at once when acme status, read just after the list, gives the
// file another notAfter: HAProxy renewed it.
func TestCertRenewedByHAProxyAskedAgain(t *testing.T) {
	fake := newLockedHAProxy(t)
	h := newPlugin(t, &HAProxy{Servers: []string{fake.Path}, CertificateDetailsInterval: config.Duration(time.Hour)})
	asked := func() []string {
		t.Helper()
		before := len(fake.Commands())
		if _, errs := gather(t, h); len(errs) > 0 {
			t.Fatal(errs)
		}
		var files []string
		for _, l := range fake.Commands()[before:] {
			for _, c := range strings.Split(strings.TrimSpace(l), ";") {
				if f, ok := strings.CutPrefix(c, "show ssl cert "); ok {
					files = append(files, f)
				}
			}
		}
		return files
	}
	files := asked()
	if len(files) != 3 {
		t.Fatalf("first gather asked %q, want the 3 files' details", files)
	}
	ms, _ := gather(t, h)
	var a telegraf.Metric
	for _, m := range ms {
		if f, _ := m.GetTag("file"); m.Name() == "haproxy_cert" && f == files[0] {
			a = m
		}
	}
	if a == nil {
		t.Fatalf("no haproxy_cert for %s", files[0])
	}
	notAfter := time.Unix(a.Fields()["enddate"].(int64), 0).UTC()
	row := func(end time.Time) string {
		return files[0] + "\tle\tScheduled\t" + end.Format(time.RFC3339) + "\t1d\t" + end.Add(-time.Hour).Format(time.RFC3339) + "\t1d"
	}
	fake.setACME(row(notAfter))
	if again := asked(); len(again) != 0 {
		t.Errorf("acme status with the same notAfter: asked %q again, want none", again)
	}
	fake.setACME(row(notAfter.Add(90 * 24 * time.Hour)))
	if again := asked(); len(again) != 1 || again[0] != files[0] {
		t.Errorf("acme status with a new notAfter: asked %q again, want %s only", again, files[0])
	}
}
