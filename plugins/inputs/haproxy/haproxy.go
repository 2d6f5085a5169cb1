// Package haproxy is the [[inputs.haproxy]] plugin: it reads HAProxy's
// statistics from stats sockets and stats pages.
//
// For the same CSV it emits exactly what Telegraf's inputs.haproxy emits
// (measurement haproxy, tags server, proxy, sv, type, the same renames and
// field types), plus a process_num tag, one 0/1 field per state of a fixed
// status vocabulary, each backend's servers counted by state, the
// haproxy_info measurement from "show info" and the haproxy_table
// measurement (each stick table's size and use) from "show table".
package haproxy

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/filter"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/inputs"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/contract"
	"github.com/hap-monitor/hap-monitor/plugins/common/tls"
)

//go:embed sample.conf
var sampleConfig string

// DefaultTimeout bounds one server's dial, write and read together.
const DefaultTimeout = 5 * time.Second

// DefaultCertificateDetailsInterval is how long a long-running process
// keeps a certificate's details before asking them again.
const DefaultCertificateDetailsInterval = 5 * time.Minute

// rowTypeBits are the types option's values and HAProxy's typemask bits.
var rowTypeBits = map[string]uint8{"frontend": 1, "backend": 2, "server": 4, "listener": 8}

// What the shim and the config loader rely on.
var (
	_ telegraf.Input         = (*HAProxy)(nil)
	_ contract.FieldSelector = (*HAProxy)(nil)
)

// HAProxy is the plugin.
type HAProxy struct {
	Servers        []string        `toml:"servers"`
	KeepFieldNames bool            `toml:"keep_field_names"`
	Username       string          `toml:"username"`
	Password       string          `toml:"password"`
	Timeout        config.Duration `toml:"timeout"`
	Types          []string        `toml:"types"`
	Proxies        []string        `toml:"proxies"`
	IncludeFields  []string        `toml:"include_fields"`
	ExcludeFields  []string        `toml:"exclude_fields"`
	// OptionalMeasurements are those of the optional commands to read
	// (see commands.go); nil reads them all.
	OptionalMeasurements []string `toml:"optional_measurements"`
	// CertificateDetailsInterval is how long a long-running process keeps
	// a certificate's details before asking them again (cert.go).
	CertificateDetailsInterval config.Duration `toml:"certificate_details_interval"`
	tls.ClientConfig

	Log telegraf.Logger `toml:"-"`

	endpoints []endpoint
	typeMask  uint8
	proxies   map[string]bool
	fields    filter.Filter
	client    *http.Client
	commands  string
	// measurements are the optional measurements read.
	measurements map[string]bool

	// said holds what is said once for the plugin's lifetime: the pairs
	// of sockets reported as the same process (collision.go), a master
	// whose old workers give no rows.
	said *onceSet
	// skipped holds the optional commands each socket lacks or refuses.
	skipped *skippedCommands
	// certCache holds the certificates' details between gathers.
	certCache *certCache
	// arenas is how released rows' storage is handled (tests only).
	arenas arenaOptions
}

// onceSet remembers keys, for what is said once.
type onceSet struct {
	mu   sync.Mutex
	keys map[string]bool
}

// once reports whether key is new, and remembers it: what is said at
// most once for the plugin's lifetime is said when once is true.
func (h *HAProxy) once(key string) bool {
	s := h.said
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys[key] {
		return false
	}
	s.keys[key] = true
	return true
}

// SampleConfig returns the plugin's commented sample configuration.
func (*HAProxy) SampleConfig() string { return sampleConfig }

// Init validates every option; each error names its option.
func (h *HAProxy) Init() error {
	if h.Timeout == 0 {
		h.Timeout = config.Duration(DefaultTimeout)
	}
	if h.Timeout < 0 {
		return fmt.Errorf("timeout: must be > 0, not %s", h.Timeout)
	}
	if h.CertificateDetailsInterval < 0 {
		return fmt.Errorf("certificate_details_interval: must be 0 (every gather) or more, not %s", h.CertificateDetailsInterval)
	}
	servers := h.Servers
	if len(servers) == 0 {
		servers = []string{defaultServer}
	}
	h.endpoints = h.endpoints[:0]
	for _, s := range servers {
		ep, err := parseServer(s)
		if err != nil {
			return fmt.Errorf("servers: %w", err)
		}
		h.endpoints = append(h.endpoints, ep)
	}
	if err := h.initTypes(); err != nil {
		return err
	}
	if err := h.initProxies(); err != nil {
		return err
	}
	if err := h.initFields(); err != nil {
		return err
	}
	if err := h.initMeasurements(); err != nil {
		return err
	}
	tlsCfg, err := h.ClientConfig.TLSConfig()
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	h.client = newHTTPClient(tlsCfg)
	h.commands = buildCommands(h.typeMask, h.Proxies)
	h.said = &onceSet{keys: make(map[string]bool)}
	h.skipped = newSkippedCommands()
	h.certCache = newCertCache()
	return nil
}

func (h *HAProxy) initTypes() error {
	h.typeMask = 0
	for _, t := range h.Types {
		bit, ok := rowTypeBits[t]
		if !ok {
			return fmt.Errorf("types: unknown row type %q (want frontend, backend, server or listener)", t)
		}
		h.typeMask |= bit
	}
	return nil
}

func (h *HAProxy) initProxies() error {
	h.proxies = nil
	if len(h.Proxies) == 0 {
		return nil
	}
	h.proxies = make(map[string]bool, len(h.Proxies))
	for _, p := range h.Proxies {
		// A name goes on the command line: it must be one word HAProxy
		// reads back as it is.
		if p == "" || strings.ContainsAny(p, " \t\r\n;\\'\"#") {
			return fmt.Errorf("proxies: %q is not a proxy name", p)
		}
		h.proxies[p] = true
	}
	return nil
}

func (h *HAProxy) initMeasurements() error {
	all := OptionalMeasurements()
	h.measurements = make(map[string]bool, len(all))
	if h.OptionalMeasurements == nil {
		for _, m := range all {
			h.measurements[m] = true
		}
		return nil
	}
	for _, m := range h.OptionalMeasurements {
		if !slices.Contains(all, m) {
			return fmt.Errorf("optional_measurements: unknown measurement %q (want some of %s)", m, strings.Join(all, ", "))
		}
		h.measurements[m] = true
	}
	return nil
}

func (h *HAProxy) initFields() error {
	h.fields = nil
	if len(h.IncludeFields) == 0 && len(h.ExcludeFields) == 0 {
		return nil
	}
	f, err := filter.NewIncludeExcludeFilter(h.IncludeFields, h.ExcludeFields)
	if err != nil {
		return fmt.Errorf("include_fields/exclude_fields: %w", err)
	}
	h.fields = f
	return nil
}

// countsServers reports whether BACKEND rows get their servers counted:
// when backends are kept and the answer holds the server rows. A stats
// page always holds every row; a socket only the types asked for. Server
// rows are not asked for just to count them: they are most of the dump
// (ten of the eleven rows of a backend of ten servers).
func (h *HAProxy) countsServers(page bool) bool {
	if h.typeMask == 0 {
		return true
	}
	if h.typeMask&rowTypeBits["backend"] == 0 {
		return false
	}
	return page || h.typeMask&rowTypeBits["server"] != 0
}

// buildCommands is the start of the one line written to a socket: "show
// info", then one "show stat" (one per proxy when proxies are named, so
// that HAProxy only dumps those). The optional commands follow it (see
// commandsFor). Only "show" commands are ever sent.
func buildCommands(typeMask uint8, proxies []string) string {
	mask := "-1"
	if typeMask != 0 {
		mask = fmt.Sprint(typeMask)
	}
	var b strings.Builder
	b.WriteString("show info")
	switch {
	case len(proxies) > 0:
		for _, p := range proxies {
			fmt.Fprintf(&b, ";show stat %s %s -1", p, mask)
		}
	case typeMask != 0:
		fmt.Fprintf(&b, ";show stat -1 %s -1", mask)
	default:
		b.WriteString(";show stat")
	}
	return b.String()
}

// Gather reads every server concurrently (a master CLI's workers too).
// Each server that fails adds one error naming it; the others' metrics are
// kept. With more than one server, series that two of them share are
// reported (see collision.go).
func (h *HAProxy) Gather(acc telegraf.Accumulator) error {
	var eps []endpoint
	for _, entry := range h.endpoints {
		expanded, err := entry.expand()
		if err != nil {
			acc.AddError(err)
			continue
		}
		eps = append(eps, expanded...)
	}
	var col *collisions
	if len(eps) > 1 {
		col = newCollisions()
	}
	var wg sync.WaitGroup
	for _, ep := range eps {
		var src *seriesSource
		if col != nil && !ep.master {
			src = col.source(ep.name, 0, 0) // in the configuration's order
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ep.master {
				h.gatherMaster(ep, acc, col)
				return
			}
			if err := h.gatherOne(ep, acc, src); err != nil {
				acc.AddError(err)
			}
		}()
	}
	wg.Wait()
	col.report(h)
	return nil
}

// gatherOne reads one server within the timeout. src, when not nil,
// tracks its series.
func (h *HAProxy) gatherOne(ep endpoint, acc telegraf.Accumulator, src *seriesSource) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(h.Timeout))
	defer cancel()
	if src != nil {
		acc = src.wrap(acc)
	}
	g := &serverGather{h: h, ep: ep, acc: acc, ts: time.Now()}
	var err error
	if ep.kind == kindHTTP {
		err = queryHTTP(ctx, h.client, ep, h.Username, h.Password, g.readPage)
	} else {
		g.query = func(line string, read func(*lineReader) error) error {
			n, err := querySocket(ctx, ep, line, read)
			// The connection's deadline may fire a moment before the context's.
			if err != nil && (ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)) {
				err = fmt.Errorf("%w (timeout %s, %d bytes read)", err, h.Timeout, n)
			}
			return err
		}
		var certErr error
		if err, certErr = g.ask(); err == nil && certErr != nil {
			return fmt.Errorf("show ssl cert on %s: %w", ep.name, certErr)
		}
	}
	if src != nil && g.pid != 0 {
		src.setProcess(g.pid, g.uptime)
	}
	if err != nil {
		return fmt.Errorf("show stat on %s: %w", ep.name, err)
	}
	return nil
}

// serverGather is the state of reading one server's answers.
type serverGather struct {
	h   *HAProxy
	ep  endpoint
	acc telegraf.Accumulator
	ts  time.Time
	// pid and uptime are show info's Pid and Uptime_sec: which HAProxy
	// process answered (0 when not known); version its Version.
	pid, uptime int64
	version     string
	// rows counts the rows of show stat emitted.
	rows int
	// asked are the optional commands asked, on the line or on a
	// connection of their own; skips those the socket lacked or refused
	// (see skipSaid), and held the metrics that wait for show info's
	// Process_num (see emitHeld), under mu: both connections' readers
	// add to them.
	asked []*command
	mu    sync.Mutex
	skips []commandSkip
	held  []telegraf.Metric
	// processNum is show info's Process_num, for metrics made after it.
	processNum string
	// query asks the same server another line of commands, within the
	// gather's timeout.
	query func(line string, read func(*lineReader) error) error
	// certs is what the certificate commands said (cert.go), read on
	// connections of their own while the line is read.
	certs certAnswers
}

// ask asks a socket (or a worker, through its master) everything: the
// line, read by readSocket, and beside it the certificates (startCerts);
// then it records the optional commands the socket lacked or refused.
// err is the line's, certErr the certificates'.
func (g *serverGather) ask() (err, certErr error) {
	var line string
	line, g.asked = g.h.commandsFor(g.ep.name)
	certs := g.startCerts()
	err = g.query(line, g.readSocket)
	certErr = certs()
	g.skipSaid()
	return err, certErr
}

// readSocket reads "show info", each "show stat" answer, then the
// optional commands asked on the line. Problems with one answer do not
// stop the next one from being read, as long as the answer was read to
// its end.
func (g *serverGather) readSocket(lr *lineReader) error {
	info, err := parseInfo(lr)
	g.pid, g.uptime = info.process()
	g.version, g.processNum = info.Version, info.ProcessNum
	g.addInfo(info)
	if err != nil {
		return fmt.Errorf("show info: %w", err)
	}
	g.h.processSeen(g.ep.name, g.pid)
	n := max(1, len(g.h.Proxies))
	var errs []error
	for i := 0; i < n; i++ {
		ended, err := g.readStat(lr, info.ProcessNum, false)
		if err != nil {
			if len(g.h.Proxies) > 0 {
				err = fmt.Errorf("proxy %q: %w", g.h.Proxies[i], err)
			}
			errs = append(errs, err)
		}
		if !ended {
			return errors.Join(errs...) // out of step: the rest cannot be read
		}
	}
	for _, c := range g.asked {
		if c.place != onLine {
			continue // asked with the certificates
		}
		if err := g.readOptional(c, lr, info.ProcessNum); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// readPage reads a stats page's CSV; process_num comes from each row's
// pid. A page has no stick tables.
func (g *serverGather) readPage(lr *lineReader) error {
	_, err := g.readStat(lr, "", true)
	return err
}

// maxErrorAnswerLines bounds the lines skipped after an answer that is
// not CSV (HAProxy's error messages are one line).
const maxErrorAnswerLines = 100

// readStat reads one "show stat" answer and emits its rows. A ragged row
// is left out and reported; the rows around it are still emitted. ended
// tells that the answer was read to its end, so that the next one can be.
func (g *serverGather) readStat(lr *lineReader, processNum string, endOnEOF bool) (ended bool, err error) {
	sr := newStatReader(lr, endOnEOF)
	if err := sr.readHeader(); err != nil {
		var nc *notCSVError
		if errors.As(err, &nc) && !endOnEOF {
			if serr := sr.skipAnswer(maxErrorAnswerLines); serr != nil {
				return false, errors.Join(err, serr)
			}
			return true, err
		}
		return false, err
	}
	sink := newRowSink(g.acc, newRowPlan(sr.header, g.h.KeepFieldNames, g.h.fields), g.ep.tag, g.ts, g.h.arenas)
	sink.processNum, sink.log = processNum, g.h.Log
	if endOnEOF { // a stats page cannot be asked for less: filter here
		sink.types, sink.proxies = g.h.typeMask, g.h.proxies
	}
	sink.countServers = g.h.countsServers(endOnEOF) && sink.plan.canCount()
	var bad badRows
	for {
		cells, err := sr.next()
		if err == nil {
			if !sink.add(cells) {
				bad.add(fmt.Errorf("row %d: unknown row type %q", sr.rows, cells[sink.plan.typeIdx]))
				continue
			}
			g.rows++
			continue
		}
		if errors.Is(err, io.EOF) {
			return true, bad.err()
		}
		var te *TruncatedError
		if errors.As(err, &te) && te.midAnswer {
			bad.add(err)
			continue
		}
		bad.add(err)
		return false, bad.err()
	}
}

// badRows collects the rows (or lines) of one answer that could not be
// read: the first is reported, with the count of the others.
type badRows struct {
	noun  string // what the others are called; "" is "bad rows"
	first error
	n     int
}

func (b *badRows) add(err error) {
	if b.first == nil {
		b.first = err
	}
	b.n++
}

func (b *badRows) err() error {
	switch b.n {
	case 0:
		return nil
	case 1:
		return b.first
	}
	noun := b.noun
	if noun == "" {
		noun = "bad rows"
	}
	return fmt.Errorf("%w (and %d more %s)", b.first, b.n-1, noun)
}

func init() {
	inputs.Add("haproxy", func() telegraf.Input {
		return &HAProxy{CertificateDetailsInterval: config.Duration(DefaultCertificateDetailsInterval)}
	})
}

// addInfo emits the haproxy_info metric of one server.
// Its fields come in the answer's order, then version: two gathers print
// the same line.
func (g *serverGather) addInfo(info infoAnswer) {
	tags := map[string]string{"server": g.ep.tag}
	if info.ProcessNum != "" {
		tags["process_num"] = info.ProcessNum
	}
	m := metric.New("haproxy_info", tags, nil, g.ts)
	for _, f := range info.Fields {
		if g.h.fields == nil || g.h.fields.Match(f.Name) {
			m.AddField(f.Name, f.Value)
		}
	}
	if info.Version != "" && (g.h.fields == nil || g.h.fields.Match("version")) {
		m.AddField("version", info.Version)
	}
	if len(m.FieldList()) == 0 {
		return
	}
	g.acc.AddMetric(m)
}
