package haproxy

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/influxdata/telegraf/metric"
)

// The certificates HAProxy serves are those it holds in memory, which
// differ from the files on disk after "set ssl cert" + "commit ssl cert"
// (memory newer) or a renewed file without a reload (disk newer). Three
// commands read them, at level operator (2.2 and later):
//
//	show ssl cert            "# filename", then one file a line
//	                         ("*file" for a transaction not committed)
//	show ssl cert <file>     "Key: value" lines: Filename, Status (Used,
//	                         Unused), Serial, notBefore, notAfter,
//	                         Subject Alternative Name, Subject, Issuer, ...
//	show ssl sni             (3.2 and later, level user) tab-separated:
//	                         Frontend/Bind, SNI, Negative Filter, Type,
//	                         Filename, NotAfter, NotBefore
//
// The list is on the line of the other commands; the details of the files
// it names are asked after it, on connections of their own, as many
// commands a line as HAProxy's command buffer takes (detailLineBytes).
// Each file gives one haproxy_cert metric, with Telegraf x509_cert's
// fields (expiry, age, startdate, enddate) and tags (common_name,
// issuer_common_name, serial_number, san), the file, its status and,
// where show ssl sni says them, the frontends and binds that serve it.

// maxCertFiles bounds the files of one "show ssl cert" list.
const maxCertFiles = 200000

// readCertList reads "show ssl cert": the files HAProxy holds, kept for
// the details asked after this answer. Uncommitted transactions ("*file")
// are not served and are left out.
func (g *serverGather) readCertList(lr *lineReader, _ string) error {
	var bad badRows
	bad.noun = "bad lines"
	err := readAnswerLines(lr, maxCertFiles, func(n int, line []byte) {
		switch {
		case len(line) > 0 && line[0] == '#', len(line) > 0 && line[0] == '*':
		case bytes.ContainsAny(line, ";\r\t") || bytes.HasPrefix(line, []byte(" ")):
			// It would not go back on a command line as it is.
			bad.add(fmt.Errorf("line %d left out: not a file name HAProxy can be asked about: %q", n, clip(line, 200)))
		default:
			g.certFiles = append(g.certFiles, string(line))
		}
	})
	if err != nil {
		bad.add(err)
	}
	return bad.err()
}

// readSNI reads "show ssl sni": which frontend and bind serve each file,
// kept for the files' metrics.
func (g *serverGather) readSNI(lr *lineReader, _ string) error {
	var bad badRows
	bad.noun = "bad lines"
	err := readAnswerLines(lr, maxCertFiles, func(n int, line []byte) {
		if len(line) > 0 && line[0] == '#' {
			return
		}
		cols := bytes.Split(line, []byte{'\t'})
		if len(cols) < 5 || len(cols[0]) == 0 || len(cols[4]) == 0 {
			bad.add(fmt.Errorf("line %d left out: not the 7 tab-separated columns of show ssl sni: %q", n, clip(line, 200)))
			return
		}
		if g.sni == nil {
			g.sni = make(map[string][]string)
		}
		file, bind := string(cols[4]), string(cols[0])
		if !slices.Contains(g.sni[file], bind) {
			g.sni[file] = append(g.sni[file], bind)
		}
	})
	if err != nil {
		bad.add(err)
	}
	return bad.err()
}

// certDetails is what "show ssl cert <file>" says of one certificate.
type certDetails struct {
	file                string
	status              string // "Used", "Unused"
	serial              string // as x509_cert gives it: hexadecimal, lower case, no leading zeros
	notBefore, notAfter time.Time
	san                 string // as x509_cert gives it: DNS names, e-mail addresses, IPs, URIs
	commonName          string
	issuerCommonName    string
}

// certTimeLayout is how OpenSSL prints a certificate's dates:
// "Jan  6 22:37:36 2027 GMT".
const certTimeLayout = "Jan _2 15:04:05 2006 MST"

// maxCertDetailLines bounds the lines of one file's details (a chain of
// certificates adds a few lines each).
const maxCertDetailLines = 1000

// parseCertDetails reads one answer of "show ssl cert <file>".
func parseCertDetails(lr *lineReader) (certDetails, error) {
	var c certDetails
	var errs []error
	// The chain's lines ("Chain Subject: ...") come after the leaf's: the
	// first of each key is the leaf's.
	seen := map[string]bool{}
	err := readAnswerLines(lr, maxCertDetailLines, func(n int, line []byte) {
		key, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || seen[string(key)] {
			return
		}
		seen[string(key)] = true
		v := string(bytes.TrimSpace(value))
		switch string(key) {
		case "Filename":
			c.file = v
		case "Status":
			c.status = v
		case "Serial":
			c.serial = serialNumber(v)
		case "notBefore", "notAfter":
			t, err := time.Parse(certTimeLayout, v)
			if err != nil {
				errs = append(errs, fmt.Errorf("line %d: %s %q is not a date", n, key, v))
				return
			}
			if key[3] == 'B' {
				c.notBefore = t
			} else {
				c.notAfter = t
			}
		case "Subject Alternative Name":
			c.san = subjectAltNames(v)
		case "Subject":
			c.commonName = commonName(v)
		case "Issuer":
			c.issuerCommonName = commonName(v)
		}
	})
	if err != nil {
		errs = append(errs, err)
	}
	if err == nil && (c.file == "" || c.notAfter.IsZero() || c.notBefore.IsZero()) {
		errs = append(errs, errors.New("no Filename, notBefore or notAfter line"))
	}
	return c, errors.Join(errs...)
}

// serialNumber gives HAProxy's serial ("04F3335A...") as x509_cert does:
// hexadecimal in lower case without leading zeros.
func serialNumber(s string) string {
	var n big.Int
	if _, ok := n.SetString(s, 16); !ok {
		return strings.ToLower(s)
	}
	return n.Text(16)
}

// subjectAltNames gives OpenSSL's "DNS:a.example.org, IP Address:127.0.0.1"
// as x509_cert's san tag: the names without their kinds, DNS names first,
// then e-mail addresses, IP addresses and URIs, joined by commas.
func subjectAltNames(s string) string {
	kinds := []string{"DNS:", "email:", "IP Address:", "URI:"}
	byKind := make([][]string, len(kinds))
	for _, name := range strings.Split(s, ", ") {
		for i, k := range kinds {
			if v, ok := strings.CutPrefix(name, k); ok {
				byKind[i] = append(byKind[i], v)
				break
			}
		}
	}
	return strings.Join(slices.Concat(byKind...), ",")
}

// commonName returns the CN of OpenSSL's one-line name
// ("/C=US/O=Example/CN=www.example.org"); "" without one.
func commonName(name string) string {
	i := strings.LastIndex(name, "/CN=")
	if i < 0 {
		return ""
	}
	cn := name[i+len("/CN="):]
	if j := strings.Index(cn, "/"); j >= 0 && strings.Contains(cn[j:], "=") {
		cn = cn[:j] // another attribute follows
	}
	return cn
}

// detailLineBytes bounds one line of "show ssl cert <file>" commands:
// HAProxy reads a command line into one buffer (tune.bufsize, 16 kB by
// default) and refuses a longer one.
const detailLineBytes = 8000

// certDetailLines splits the commands asking each file's details into
// lines of at most detailLineBytes (a longer name alone on its line).
func certDetailLines(files []string) [][]string {
	var lines [][]string
	var cur []string
	size := 0
	for _, f := range files {
		n := len("show ssl cert ") + len(f) + 1
		if len(cur) > 0 && size+n > detailLineBytes {
			lines = append(lines, cur)
			cur, size = nil, 0
		}
		cur = append(cur, f)
		size += n
	}
	if len(cur) > 0 {
		lines = append(lines, cur)
	}
	return lines
}

// readCertDetails reads the answers to one line of "show ssl cert <file>"
// commands, one per file of files, and emits a metric for each. A file
// whose answer cannot be read is reported; the others are still read.
func (g *serverGather) readCertDetails(lr *lineReader, files []string) error {
	var errs []error
	for _, f := range files {
		c, err := parseCertDetails(lr)
		if err != nil {
			errs = append(errs, fmt.Errorf("show ssl cert %s: %w", f, err))
			var te *TruncatedError
			if errors.As(err, &te) {
				return errors.Join(errs...) // out of step: the rest cannot be read
			}
			continue
		}
		g.addCert(c)
	}
	return errors.Join(errs...)
}

// addCert emits the haproxy_cert metric of one certificate.
func (g *serverGather) addCert(c certDetails) {
	tags := map[string]string{
		"server":             g.ep.tag,
		"file":               c.file,
		"status":             strings.ToLower(c.status),
		"common_name":        c.commonName,
		"issuer_common_name": c.issuerCommonName,
		"serial_number":      c.serial,
		"san":                c.san,
	}
	if g.processNum != "" {
		tags["process_num"] = g.processNum
	}
	if binds := g.sni[c.file]; len(binds) > 0 {
		tags["frontends"] = strings.Join(slices.Sorted(slices.Values(binds)), ",")
	}
	for k, v := range tags {
		if v == "" {
			delete(tags, k)
		}
	}
	m := metric.New("haproxy_cert", tags, nil, g.ts)
	for _, f := range []struct {
		name  string
		value int64
	}{
		{"expiry", int64(c.notAfter.Sub(g.ts).Seconds())},
		{"age", int64(g.ts.Sub(c.notBefore).Seconds())},
		{"startdate", c.notBefore.Unix()},
		{"enddate", c.notAfter.Unix()},
	} {
		if g.h.fields == nil || g.h.fields.Match(f.name) {
			m.AddField(f.name, f.value)
		}
	}
	if len(m.FieldList()) == 0 {
		return
	}
	g.acc.AddMetric(m)
}
