package haproxy

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

// A stats socket is asked one line of commands: "show info", then "show
// stat" (see buildCommands), then the optional commands of
// optionalCommands, each of which a socket may lack (an older HAProxy) or
// refuse (its level is too low). Each has its reader in a file of its own
// (show table: table.go) and its recorded answers in testdata/. Adding a
// command is adding its file and its row.
//
// An HAProxy answers a command it does not have with its usage text,
// which starts with "Unknown command" (2.2: "Unknown command. Please
// enter one of the following commands only :" and 80 lines; 2.6 and
// later: "Unknown command: 'show', but maybe one of the following ones
// is a better match:" and a few), ends it with an empty line, and answers
// the line's other commands. A command above the socket's level gets its
// refusal instead. Neither is an error: the socket's other answers are
// kept, and the command is not sent to that socket again while the same
// HAProxy process answers it (another process, after a restart or an
// upgrade, is asked again).

// cliLevel is a stats socket's level ("stats socket ... level user").
type cliLevel int

const (
	levelUser cliLevel = iota
	levelOperator
	levelAdmin
)

func (l cliLevel) String() string {
	return [...]string{"user", "operator", "admin"}[l]
}

// haproxyRelease is an HAProxy release, major.minor.
type haproxyRelease struct{ major, minor int }

func (r haproxyRelease) String() string { return fmt.Sprintf("%d.%d", r.major, r.minor) }

// command is one optional command of the line.
type command struct {
	text        string         // what is written: "show table"
	level       cliLevel       // the socket's level it needs
	since       haproxyRelease // the first release that has it
	measurement string         // the measurement its answer is for
	gives       string         // what its answer gives, for the log
	// read reads the answer and emits its metrics, or keeps what it says
	// for the metrics of another; processNum is show info's Process_num.
	// It is not called for a usage text or a refusal.
	read func(g *serverGather, lr *lineReader, processNum string) error
	// requires is a command without which this one is of no use: it is
	// not asked of a socket that lacks or refuses that one.
	requires *command
	// place is where it is asked: on the line, or with the
	// certificates (cert.go).
	place commandPlace
	// locks tells that it takes HAProxy's lock on the certificates,
	// which another operation may hold (certlock.go): it is asked on the
	// certificates' connection, and again when refused for the lock;
	// locksSilently that the refusal is an empty answer (acme status),
	// where any other answer has a header line.
	locks, locksSilently bool
}

// commandPlace is where a command is asked.
type commandPlace int

const (
	// onLine: on the line, after show info and show stat.
	onLine commandPlace = iota
	// onOwn: on a connection of its own, beside the line, because its
	// answer starts more queries (certificates' details), which run while
	// HAProxy dumps the statistics, or because it takes the certificates'
	// lock, which the commands of that connection take one at a time.
	onOwn
	// withDetails: before the certificates' details, when they are asked.
	withDetails
)

// The optional commands, each a row, its reader in a file of its own.
var (
	showTable = &command{text: "show table", level: levelUser, since: haproxyRelease{1, 5},
		measurement: "haproxy_table", gives: "haproxy_table metrics", read: (*serverGather).readTables}
	showSSLCert = &command{text: "show ssl cert", level: levelOperator, since: haproxyRelease{2, 2},
		measurement: "haproxy_cert", gives: "haproxy_cert metrics", read: (*serverGather).readCertList, place: onOwn, locks: true}
	showSSLSNI = &command{text: "show ssl sni", level: levelUser, since: haproxyRelease{3, 2},
		measurement: "haproxy_cert", gives: "frontends tag on haproxy_cert", read: (*serverGather).readSNI, requires: showSSLCert, place: withDetails, locks: true}
	showOCSPUpdates = &command{text: "show ssl ocsp-updates", level: levelAdmin, since: haproxyRelease{2, 8},
		measurement: "haproxy_ocsp", gives: "haproxy_ocsp metrics", read: (*serverGather).readOCSPUpdates}
	showResolvers = &command{text: "show resolvers", level: levelUser, since: haproxyRelease{1, 8},
		measurement: "haproxy_resolver", gives: "haproxy_resolver metrics", read: (*serverGather).readResolvers}
	showPeers = &command{text: "show peers", level: levelUser, since: haproxyRelease{2, 0},
		measurement: "haproxy_peer", gives: "haproxy_peer metrics", read: (*serverGather).readPeers}
	acmeStatus = &command{text: "acme status", level: levelAdmin, since: haproxyRelease{3, 2},
		measurement: "haproxy_acme", gives: "haproxy_acme metrics", read: (*serverGather).readACMEStatus, place: onOwn, locks: true, locksSilently: true}
)

// optionalCommands are the optional commands, in the order they are
// asked after show info and show stat.
var optionalCommands = []*command{showTable, showSSLCert, showSSLSNI, showOCSPUpdates, acmeStatus, showResolvers, showPeers}

// OptionalMeasurements are the measurements of the optional commands,
// the values of the optional_measurements option.
func OptionalMeasurements() []string {
	var out []string
	for _, c := range optionalCommands {
		if !slices.Contains(out, c.measurement) {
			out = append(out, c.measurement)
		}
	}
	return out
}

// unknownCommandPrefix starts HAProxy's answer to a command it does not
// have.
var unknownCommandPrefix = []byte("Unknown command")

// refusals start HAProxy's answer to a command above the socket's level:
// "Permission denied" (most commands), "Can't allocate memory!" (what
// "show ssl cert" says at level user on 2.2 to 3.4).
var refusals = [][]byte{[]byte("Permission denied"), []byte("Can't allocate memory!")}

// maxUsageLines bounds the lines of a usage text skipped.
const maxUsageLines = 1000

func isUsage(line []byte) bool { return bytes.HasPrefix(line, unknownCommandPrefix) }

func isRefusal(line []byte) bool {
	for _, r := range refusals {
		if bytes.HasPrefix(line, r) {
			return true
		}
	}
	return false
}

// skipReason is why a command is not asked of a socket.
type skipReason int

const (
	lacks   skipReason = iota + 1 // the HAProxy does not have it
	refuses                       // the socket's level is too low
)

// skippedCommands remembers, per socket, the optional commands not to
// ask it and the pid of the process that lacked or refused them.
type skippedCommands struct {
	mu      sync.Mutex
	sockets map[string]*socketSkips // by socket name
}

type socketSkips struct {
	pid  int64
	skip map[*command]skipReason
}

func newSkippedCommands() *skippedCommands {
	return &skippedCommands{sockets: make(map[string]*socketSkips)}
}

// commandsFor returns the line to send to the socket named name and the
// optional commands it asks, in their order, wherever each is asked (its
// place).
func (h *HAProxy) commandsFor(name string) (string, []*command) {
	h.skipped.mu.Lock()
	s := h.skipped.sockets[name]
	skips := func(c *command) bool { return s != nil && s.skip[c] != 0 || !h.measurements[c.measurement] }
	asked := make([]*command, 0, len(optionalCommands))
	for _, c := range optionalCommands {
		if !skips(c) && (c.requires == nil || !skips(c.requires)) {
			asked = append(asked, c)
		}
	}
	h.skipped.mu.Unlock()
	var b strings.Builder
	b.WriteString(h.commands)
	for _, c := range asked {
		if c.place == onLine {
			b.WriteString(";")
			b.WriteString(c.text)
		}
	}
	b.WriteString("\n")
	return b.String(), asked
}

// skip records that the process pid behind the socket named name lacks
// or refuses c, and says so once: at debug level for a release without
// it, as information for a level too low (the user can raise it).
func (h *HAProxy) skip(name string, pid int64, version string, c *command, why skipReason) {
	h.skipped.mu.Lock()
	s := h.skipped.sockets[name]
	if s == nil || s.pid != pid {
		s = &socketSkips{pid: pid, skip: make(map[*command]skipReason)}
		h.skipped.sockets[name] = s
	}
	s.skip[c] = why
	h.skipped.mu.Unlock()
	if why == refuses {
		h.Log.Infof("%s: %s needs a stats socket at level %s or above: this one refused it, so no %s (not asked again)",
			name, c.text, c.level, c.gives)
		return
	}
	release := ""
	if version != "" {
		release = " " + version
	}
	h.Log.Debugf("%s: HAProxy%s (pid %d) does not have %s (it answered with its usage text; %s and later have it): no %s, and %s is not sent to it again",
		name, release, pid, c.text, c.since, c.gives, c.text)
}

// processSeen tells that the process pid answered on the socket named
// name: if it is not the one that lacked or refused commands (HAProxy was
// restarted, perhaps upgraded or given another level), the next gather
// asks them again.
func (h *HAProxy) processSeen(name string, pid int64) {
	if pid == 0 {
		return
	}
	h.skipped.mu.Lock()
	s := h.skipped.sockets[name]
	restarted := s != nil && s.pid != pid
	if restarted {
		delete(h.skipped.sockets, name)
	}
	h.skipped.mu.Unlock()
	if restarted {
		var texts []string
		for _, c := range optionalCommands {
			if s.skip[c] != 0 {
				texts = append(texts, c.text)
			}
		}
		h.Log.Debugf("%s: HAProxy restarted (pid %d, was %d): %s asked again", name, pid, s.pid, strings.Join(texts, ", "))
	}
}

// readOptional reads the answer of the optional command c: a usage text
// or a refusal is skipped and kept for skipSaid (c is not asked again);
// any other answer is c's reader's.
func (g *serverGather) readOptional(c *command, lr *lineReader, processNum string) error {
	line, complete, err := lr.next()
	if err == nil && complete {
		var why skipReason
		switch {
		case isUsage(line):
			why = lacks
		case isRefusal(line):
			why = refuses
		}
		if why != 0 {
			first := string(clip(line, 60)) // line is the reader's until the next read
			if err := skipToEnd(lr, maxUsageLines, true); err != nil {
				return fmt.Errorf("%s: HAProxy's answer %q: %w", c.text, first, err)
			}
			g.mu.Lock()
			g.skips = append(g.skips, commandSkip{c, why})
			g.mu.Unlock()
			return nil
		}
	}
	if c.locksSilently && err == nil && complete && len(line) == 0 {
		return fmt.Errorf("%s: %w", c.text, errCertsLocked)
	}
	lr.unread()
	if c.locks {
		if refused, err := readCertRefusal(lr); refused {
			return fmt.Errorf("%s: %w", c.text, err)
		}
	}
	if err := c.read(g, lr, processNum); err != nil {
		return fmt.Errorf("%s: %w", c.text, err)
	}
	return nil
}

// commandSkip is an optional command a socket lacked or refused.
type commandSkip struct {
	c   *command
	why skipReason
}

// skipSaid records the commands this gather found lacked or refused,
// once show info has said which process answered: a command asked on
// another connection may be answered first.
func (g *serverGather) skipSaid() {
	g.mu.Lock()
	skips := g.skips
	g.skips = nil
	g.mu.Unlock()
	if g.pid == 0 && g.version == "" {
		return // show info was not read: which process lacks it is not known
	}
	for _, s := range skips {
		g.h.skip(g.ep.name, g.pid, g.version, s.c, s.why)
	}
}

// fieldMetric is a metric of an optional command being made: each field
// passes include_fields and exclude_fields, and it is emitted only with
// one at least.
type fieldMetric struct {
	g *serverGather
	m telegraf.Metric
	// held: made before show info was read, it waits for its
	// Process_num (emitHeld).
	held bool
}

// processNumLater, as a reader's processNum, says that show info has not
// been read yet (a command asked on another connection than the line's):
// its metrics are held until then.
const processNumLater = "\x00later"

// newMetric starts the metric name of this server, with tags and, when
// show info gave one, process_num.
func (g *serverGather) newMetric(name string, tags map[string]string, processNum string) fieldMetric {
	tags["server"] = g.ep.tag
	held := processNum == processNumLater
	if processNum != "" && !held {
		tags["process_num"] = processNum
	}
	return fieldMetric{g: g, m: metric.New(name, tags, nil, g.ts), held: held}
}

// add adds the field, unless the field filters leave it out.
func (f fieldMetric) add(name string, v any) {
	if f.g.h.fields == nil || f.g.h.fields.Match(name) {
		f.m.AddField(name, v)
	}
}

// emit hands the metric on, if it has a field.
func (f fieldMetric) emit() {
	switch {
	case len(f.m.FieldList()) == 0:
	case f.held:
		f.g.mu.Lock()
		f.g.held = append(f.g.held, f.m)
		f.g.mu.Unlock()
	default:
		f.g.acc.AddMetric(f.m)
	}
}

// emitHeld hands on the metrics held for show info's Process_num.
func (g *serverGather) emitHeld() {
	g.mu.Lock()
	held := g.held
	g.held = nil
	g.mu.Unlock()
	for _, m := range held {
		if g.processNum != "" {
			m.AddTag("process_num", g.processNum)
		}
		g.acc.AddMetric(m)
	}
}
