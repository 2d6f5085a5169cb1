package haproxy

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/lineproto"
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
// The list is asked on a connection of its own while the statistics are
// read on the line; the details of the files listed follow on that side,
// show ssl sni first, as many commands a line as HAProxy's command buffer
// takes (detailLineBytes). In a long-running process the details and
// frontends are kept (certCache) and asked again for a file every
// certificate_details_interval, and for every file when another process
// answers (a reload or a restart), or when acme status, asked just
// after the list, gives a file another notAfter (HAProxy renewed it);
// expiry and age are of each gather.
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
	notList := false
	err := readAnswerLines(lr, maxCertFiles, func(n int, line []byte) {
		switch {
		case notList:
		case n == 1 && (len(line) == 0 || line[0] != '#'):
			// The list starts "# filename" (or "# transaction"): this is
			// not it, and none of its lines is asked about.
			notList = true
			bad.add(fmt.Errorf("not show ssl cert's list, it starts with %q", clip(line, 80)))
		case line[0] == '#', line[0] == '*':
		case bytes.ContainsAny(line, "; \r\t\\"):
			// It would not go back on a command line as it is.
			bad.add(fmt.Errorf("line %d left out: not a file name HAProxy can be asked about: %q", n, clip(line, 200)))
		default:
			g.certs.files = append(g.certs.files, string(line))
		}
	})
	if err != nil {
		bad.add(err)
	}
	return bad.err()
}

// readSNI reads "show ssl sni": which frontend and bind serve each file,
// kept for the files' metrics as their frontends tag. A file has a row
// per name it serves.
func (g *serverGather) readSNI(lr *lineReader, _ string) error {
	var bad badRows
	bad.noun = "bad lines"
	binds := make(map[string][]string)
	err := readAnswerLines(lr, maxSNILines, func(n int, line []byte) {
		if len(line) > 0 && line[0] == '#' {
			return
		}
		var cols [5][]byte
		rest, i := line, 0
		for ; i < len(cols); i++ {
			var ok bool
			cols[i], rest, ok = bytes.Cut(rest, []byte{'\t'})
			if !ok {
				break
			}
		}
		if i < 4 || len(cols[0]) == 0 || len(cols[4]) == 0 {
			bad.add(fmt.Errorf("line %d left out: not the 7 tab-separated columns of show ssl sni: %q", n, clip(line, 200)))
			return
		}
		file, bind := cols[4], cols[0]
		if !slices.Contains(binds[string(file)], string(bind)) {
			binds[string(file)] = append(binds[string(file)], string(bind))
		}
	})
	if err != nil {
		bad.add(err)
	}
	g.certs.frontends = make(map[string]string, len(binds))
	for file, b := range binds {
		slices.Sort(b)
		g.certs.frontends[file] = strings.Join(b, ",")
	}
	return bad.err()
}

// maxSNILines bounds the rows of one "show ssl sni" answer: a row per
// name a certificate serves on a bind.
const maxSNILines = 1000000

// certDetails is what "show ssl cert <file>" says of one certificate.
type certDetails struct {
	file                string
	status              string // "used", "unused" (HAProxy's Used, Unused)
	serial              string // as x509_cert gives it: hexadecimal, lower case, no leading zeros
	notBefore, notAfter time.Time
	san                 string // as x509_cert gives it: DNS names, e-mail addresses, IPs, URIs
	commonName          string
	issuerCommonName    string
}

// certTimeLayout is how OpenSSL prints a certificate's dates, always in
// GMT: "Jan  6 22:37:36 2027 GMT".
const certTimeLayout = "Jan _2 15:04:05 2006 MST"

// parseCertTime reads a date as OpenSSL prints it. The zone is always
// GMT: read as UTC, without the zone time.Parse makes for "GMT" at each
// call.
func parseCertTime(s string) (time.Time, error) {
	if v, ok := strings.CutSuffix(s, " GMT"); ok {
		return time.ParseInLocation("Jan _2 15:04:05 2006", v, time.UTC)
	}
	return time.Parse(certTimeLayout, s)
}

// maxCertDetailLines bounds the lines of one file's details (a chain of
// certificates adds a few lines each).
const maxCertDetailLines = 1000

// parseCertDetails reads one answer of "show ssl cert <file>". The
// chain's lines ("Chain Subject: ...") have keys of their own; of a key
// said twice, the first is kept.
func parseCertDetails(lr *lineReader) (certDetails, error) {
	var c certDetails
	var errs []error
	set := func(dst *string, value []byte) {
		if *dst == "" {
			*dst = string(bytes.TrimSpace(value))
		}
	}
	date := func(dst *time.Time, n int, key string, value []byte) {
		if !dst.IsZero() {
			return
		}
		v := string(bytes.TrimSpace(value))
		t, err := parseCertTime(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %s %q is not a date", n, key, v))
			return
		}
		*dst = t
	}
	var serial, san, subject, issuer string
	err := readAnswerLines(lr, maxCertDetailLines, func(n int, line []byte) {
		key, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return
		}
		switch string(key) {
		case "Filename":
			set(&c.file, value)
		case "Status":
			set(&c.status, bytes.ToLower(value))
		case "Serial":
			set(&serial, value)
		case "notBefore":
			date(&c.notBefore, n, "notBefore", value)
		case "notAfter":
			date(&c.notAfter, n, "notAfter", value)
		case "Subject Alternative Name":
			set(&san, value)
		case "Subject":
			set(&subject, value)
		case "Issuer":
			set(&issuer, value)
		}
	})
	c.serial, c.san = serialNumber(serial), subjectAltNames(san)
	c.commonName, c.issuerCommonName = commonName(subject), commonName(issuer)
	if err != nil {
		errs = append(errs, err)
	}
	if err == nil && (c.file == "" || c.notAfter.IsZero() || c.notBefore.IsZero()) {
		errs = append(errs, errors.New("no Filename, notBefore or notAfter line"))
	}
	return c, errors.Join(errs...)
}

// serialNumber gives HAProxy's serial ("04F3335A...") as x509_cert does
// (math/big's Text(16)): hexadecimal in lower case without leading zeros.
func serialNumber(s string) string {
	if s == "" {
		return ""
	}
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return "0"
	}
	return strings.ToLower(s)
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
// commands, one per file of files, into g.certs.fresh, and returns the
// files refused for the certificates' lock. A file whose answer cannot
// be read is reported; the others are still read.
func (g *serverGather) readCertDetails(lr *lineReader, files []string) (locked []string, err error) {
	var errs []error
	if g.certs.fresh == nil {
		g.certs.fresh = make(map[string]certDetails, len(files))
	}
	for _, f := range files {
		if refused, err := readCertRefusal(lr); refused {
			if errors.Is(err, errCertsLocked) {
				locked = append(locked, f)
			} else {
				errs = append(errs, fmt.Errorf("show ssl cert %s: %w", f, err))
			}
			continue
		}
		c, err := parseCertDetails(lr)
		if err != nil {
			errs = append(errs, fmt.Errorf("show ssl cert %s: %w", f, err))
			var te *TruncatedError
			if errors.As(err, &te) {
				return locked, errors.Join(errs...) // out of step: the rest cannot be read
			}
			continue
		}
		g.certs.fresh[f] = c
	}
	return locked, errors.Join(errs...)
}

// certAnswers is what one gather's certificate commands said.
type certAnswers struct {
	files []string // show ssl cert's list, in its order
	// frontends is each file's frontends tag: the frontends/binds serving
	// it (show ssl sni), sorted and joined; nil when not asked.
	frontends map[string]string
	fresh     map[string]certDetails // file -> details asked in this gather
	// cached are the files whose details came from certCache.
	cached map[string]certDetails
	// acmeNotAfter is each file's notAfter as acme status says it, read
	// before the details are asked.
	acmeNotAfter map[string]time.Time
}

// renewed takes out of cached the files whose notAfter acme status says
// otherwise (HAProxy renewed them since their details were kept) and
// returns them, to be asked again.
func (c *certAnswers) renewed() []string {
	var out []string
	for f, notAfter := range c.acmeNotAfter {
		if d, ok := c.cached[f]; ok && !d.notAfter.Equal(notAfter) {
			delete(c.cached, f)
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

// startCerts asks the certificates (show ssl cert's list) on a connection
// of their own, then the details the list calls for, while the caller
// reads the line; the function it returns waits for them, emits the
// certificates' metrics and returns what failed. Nothing is asked when
// the socket lacks or refuses show ssl cert, or haproxy_cert is not read.
func (g *serverGather) startCerts() func() error {
	var own, with []*command
	for _, c := range g.asked {
		switch c.place {
		case onOwn:
			own = append(own, c)
		case withDetails:
			with = append(with, c)
		}
	}
	if len(own) == 0 {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() { done <- g.fetchCerts(own, with) }()
	return func() error {
		err := <-done
		return errors.Join(err, g.emitCerts(with))
	}
}

// fetchCerts asks the commands own on one line, then, with the commands
// with before them, the details of the files listed that certCache does
// not hold fresh. A command refused for HAProxy's lock on the
// certificates is asked again (certlock.go). When the list cannot be had
// for the lock, the files and details kept from earlier gathers are
// used, and the refusal reported.
func (g *serverGather) fetchCerts(own, with []*command) error {
	var errs []error
	pending := own
	for try := 1; len(pending) > 0; try++ {
		if try > 1 {
			time.Sleep(certLockPauseBefore(try))
		}
		var locked []*command
		var readErr error
		err := g.query(joinCommands(pending), func(lr *lineReader) error {
			locked, readErr = g.readOptionals(pending, lr)
			return nil
		})
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		errs = append(errs, readErr)
		if len(locked) > 0 && try == certLockTries {
			errs = append(errs, lockedError(locked, try))
			if slices.Contains(locked, showSSLCert) {
				g.certs.files, g.certs.cached = g.h.certCache.kept(g.ep.name)
				return errors.Join(errs...)
			}
			break
		}
		pending = locked
	}
	if !slices.Contains(own, showSSLCert) {
		return errors.Join(errs...)
	}
	var ask []string
	g.certs.cached, ask = g.h.certCache.lookup(g.ep.name, g.certs.files, g.ts, time.Duration(g.h.CertificateDetailsInterval))
	ask = append(ask, g.certs.renewed()...)
	return errors.Join(append(errs, g.askCertDetails(ask, with))...)
}

// lockedError reports the commands still refused for the lock after
// tries.
func lockedError(cmds []*command, tries int) error {
	texts := make([]string, len(cmds))
	for i, c := range cmds {
		texts[i] = c.text
	}
	return fmt.Errorf("%s: %w, %d tries", strings.Join(texts, ", "), errCertsLocked, tries)
}

// readOptionals reads the answers of the optional commands cmds, in
// order (their metrics wait for show info's Process_num: see emitHeld),
// and returns those refused for the certificates' lock.
func (g *serverGather) readOptionals(cmds []*command, lr *lineReader) (locked []*command, err error) {
	var errs []error
	for _, c := range cmds {
		if err := g.readOptional(c, lr, processNumLater); err != nil {
			if errors.Is(err, errCertsLocked) {
				locked = append(locked, c)
				continue
			}
			errs = append(errs, err)
		}
	}
	return locked, errors.Join(errs...)
}

// joinCommands is the line asking cmds.
func joinCommands(cmds []*command) string {
	var b strings.Builder
	for i, c := range cmds {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(c.text)
	}
	b.WriteByte('\n')
	return b.String()
}

// askCertDetails asks the details of files, the commands with first, and
// asks again those refused for the certificates' lock (certlock.go).
// Without files, nothing is asked.
func (g *serverGather) askCertDetails(files []string, with []*command) error {
	if len(files) == 0 {
		return nil
	}
	var errs []error
	for try := 1; len(files) > 0 || len(with) > 0; try++ {
		if try > 1 {
			time.Sleep(certLockPauseBefore(try))
		}
		lockedFiles, lockedWith, err := g.askCertDetailsOnce(files, with)
		errs = append(errs, err)
		if try == certLockTries && len(lockedWith) > 0 {
			errs = append(errs, lockedError(lockedWith, try))
		}
		if try == certLockTries && len(lockedFiles) > 0 {
			errs = append(errs, fmt.Errorf("show ssl cert of %d files (%s...): %w, %d tries", len(lockedFiles), lockedFiles[0], errCertsLocked, try))
		}
		if try == certLockTries {
			break
		}
		files, with = lockedFiles, lockedWith
	}
	return errors.Join(errs...)
}

// askCertDetailsOnce asks the details of files, as many a line as fit
// (certDetailLines), one line a connection, the first line after the
// commands with. A line that fails is reported; the next is still asked.
// It returns the files and commands refused for the lock.
func (g *serverGather) askCertDetailsOnce(files []string, with []*command) (lockedFiles []string, lockedWith []*command, err error) {
	var errs []error
	lines := certDetailLines(files)
	if len(lines) == 0 && len(with) > 0 {
		lines = [][]string{nil}
	}
	for n, line := range lines {
		var b strings.Builder
		var before []*command
		if n == 0 {
			before = with
		}
		for i, c := range before {
			if i > 0 {
				b.WriteByte(';')
			}
			b.WriteString(c.text)
		}
		for i, f := range line {
			if i > 0 || len(before) > 0 {
				b.WriteByte(';')
			}
			b.WriteString("show ssl cert ")
			b.WriteString(f)
		}
		b.WriteByte('\n')
		err := g.query(b.String(), func(lr *lineReader) error {
			locked, err := g.readOptionals(before, lr)
			lockedWith = append(lockedWith, locked...)
			lf, derr := g.readCertDetails(lr, line)
			lockedFiles = append(lockedFiles, lf...)
			return errors.Join(err, derr)
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return lockedFiles, lockedWith, errors.Join(errs...)
}

// emitCerts emits a metric for each file listed, from its details asked
// in this gather or kept, once show info said which process answered:
// details kept from another process are asked again first, with the
// commands with.
func (g *serverGather) emitCerts(with []*command) error {
	if g.pid == 0 && g.version == "" {
		return nil // show info was not read: its error says why
	}
	g.emitHeld()
	var err error
	if len(g.certs.cached) > 0 && !g.h.certCache.samePID(g.ep.name, g.pid) {
		stale := slices.Collect(maps.Keys(g.certs.cached))
		slices.Sort(stale)
		g.certs.cached = nil
		err = g.askCertDetails(stale, with)
	}
	g.certs.frontends = g.h.certCache.store(g.ep.name, g.pid, g.certs.files, g.certs.fresh, g.certs.frontends, g.ts)
	cm := g.newCertMetrics()
	for _, f := range g.certs.files {
		if c, ok := g.certs.fresh[f]; ok {
			g.addCert(cm, c)
		} else if c, ok := g.certs.cached[f]; ok {
			g.addCert(cm, c)
		}
	}
	return err
}

// certFieldKeys are haproxy_cert's fields, sorted: the keys table of its
// metrics' text fields.
var certFieldKeys = []string{"age", "enddate", "expiry", "startdate"}

// certMetrics makes haproxy_cert metrics as rows' are made (rowMetric):
// tags and fields as text carved from arenas shared by many
// certificates, which the execd input writes without a value boxed or a
// map made. A gather of 2,000 certificates is 2,000 of them.
type certMetrics struct {
	slabs metricSlabs
	keys  []bool // which of certFieldKeys the field filters keep
	tags  []telegraf.Tag
	raw   []lineproto.TextField
	text  []byte
}

func (g *serverGather) newCertMetrics() *certMetrics {
	cm := &certMetrics{slabs: metricSlabs{opts: g.h.arenas}, keys: make([]bool, len(certFieldKeys))}
	for i, k := range certFieldKeys {
		cm.keys[i] = g.h.fields == nil || g.h.fields.Match(k)
	}
	return cm
}

// addCert emits the haproxy_cert metric of one certificate.
func (g *serverGather) addCert(cm *certMetrics, c certDetails) {
	// Sorted by key, as a metric's tags are; the empty ones left out.
	cm.tags = cm.tags[:0]
	for _, t := range [...]telegraf.Tag{
		{Key: "common_name", Value: c.commonName},
		{Key: "file", Value: c.file},
		{Key: "frontends", Value: g.certs.frontends[c.file]},
		{Key: "issuer_common_name", Value: c.issuerCommonName},
		{Key: "process_num", Value: g.processNum},
		{Key: "san", Value: c.san},
		{Key: "serial_number", Value: c.serial},
		{Key: "server", Value: g.ep.tag},
		{Key: "status", Value: c.status},
	} {
		if t.Value != "" {
			cm.tags = append(cm.tags, t)
		}
	}
	cm.raw, cm.text = cm.raw[:0], cm.text[:0]
	for i, v := range [...]int64{
		int64(g.ts.Sub(c.notBefore).Seconds()), // age
		c.notAfter.Unix(),                      // enddate
		int64(c.notAfter.Sub(g.ts).Seconds()),  // expiry
		c.notBefore.Unix(),                     // startdate
	} {
		if !cm.keys[i] {
			continue
		}
		off := len(cm.text)
		cm.text = strconv.AppendInt(cm.text, v, 10)
		cm.raw = append(cm.raw, lineproto.TextField{Off: uint32(off), Len: uint32(len(cm.text) - off), Key: uint16(i), Kind: lineproto.KindInt})
	}
	if len(cm.raw) == 0 {
		return
	}
	g.acc.AddMetric(cm.slabs.newRowMetric("haproxy_cert", cm.tags, cm.raw, certFieldKeys, cm.text, g.ts))
}

// certCache keeps, per socket, each certificate's details and when they
// were asked, and the frontends serving each, for the gathers of a
// long-running process.
type certCache struct {
	mu      sync.Mutex
	sockets map[string]*socketCerts // by socket name
}

type socketCerts struct {
	pid   int64 // the process that answered
	files map[string]cachedCert
	// frontends is each file's frontends tag, from show ssl sni when
	// last asked.
	frontends map[string]string
	stored    time.Time // the gather that stored it
	gen       uint64    // counts the gathers that stored it
}

// certCacheIdle is how long a socket's certificates are kept without a
// gather storing them: a worker gone after a reload, a socket no longer
// matched by a glob.
const certCacheIdle = time.Hour

type cachedCert struct {
	details certDetails
	asked   time.Time
	gen     uint64 // the last gather that listed it
}

func newCertCache() *certCache { return &certCache{sockets: make(map[string]*socketCerts)} }

// lookup returns the details kept for files of the socket named name that
// are younger than interval at now, and the files whose details must be
// asked.
func (cc *certCache) lookup(name string, files []string, now time.Time, interval time.Duration) (map[string]certDetails, []string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	s := cc.sockets[name]
	kept := make(map[string]certDetails)
	var ask []string
	for _, f := range files {
		c, ok := cachedCert{}, false
		if s != nil {
			c, ok = s.files[f]
		}
		if ok && now.Sub(c.asked) < interval {
			kept[f] = c.details
			continue
		}
		ask = append(ask, f)
	}
	return kept, ask
}

// kept returns the files of the socket named name as its last gather
// listed them, with the details kept of each.
func (cc *certCache) kept(name string) ([]string, map[string]certDetails) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	s := cc.sockets[name]
	if s == nil {
		return nil, nil
	}
	files := slices.Sorted(maps.Keys(s.files))
	details := make(map[string]certDetails, len(files))
	for f, c := range s.files {
		details[f] = c.details
	}
	return files, details
}

// samePID tells whether the details kept for the socket named name are
// the process pid's.
func (cc *certCache) samePID(name string, pid int64) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	s := cc.sockets[name]
	return s != nil && s.pid == pid
}

// store keeps the socket's details for the next gather (those asked at
// now, and those kept before of the files still listed) and their
// frontends when show ssl sni was asked, and returns the frontends to
// use: those asked, else those kept. The same process's are updated in
// place: a gather that asks nothing allocates nothing here.
func (cc *certCache) store(name string, pid int64, files []string, fresh map[string]certDetails, frontends map[string]string, now time.Time) map[string]string {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for other, o := range cc.sockets {
		if now.Sub(o.stored) > certCacheIdle {
			delete(cc.sockets, other)
		}
	}
	s := cc.sockets[name]
	if s == nil || s.pid != pid {
		s = &socketCerts{pid: pid, files: make(map[string]cachedCert, len(files))}
		cc.sockets[name] = s
	}
	if frontends != nil {
		s.frontends = frontends
	}
	s.stored = now
	s.gen++
	kept := 0
	for _, f := range files {
		if c, ok := fresh[f]; ok {
			s.files[f] = cachedCert{details: c, asked: now, gen: s.gen}
			kept++
		} else if c, ok := s.files[f]; ok && c.gen != s.gen {
			c.gen = s.gen
			s.files[f] = c
			kept++
		}
	}
	if kept != len(s.files) { // files no longer listed
		for f, c := range s.files {
			if c.gen != s.gen {
				delete(s.files, f)
			}
		}
	}
	return s.frontends
}
