package haproxy

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/filter"

	"github.com/hap-monitor/hap-monitor/plugins/common/lineproto"
)

// HAProxy's row types (the type column).
const (
	typeFrontend = 0
	typeBackend  = 1
	typeServer   = 2
	typeListener = 3
)

// typeNames are the type tag's values, indexed by the type column.
var typeNames = [...]string{"frontend", "backend", "server", "listener"}

// fieldRenames are Telegraf's renames, undone by keep_field_names.
var fieldRenames = map[string]string{
	"pxname":     "proxy",
	"svname":     "sv",
	"act":        "active_servers",
	"bck":        "backup_servers",
	"cli_abrt":   "cli_abort",
	"srv_abrt":   "srv_abort",
	"hrsp_1xx":   "http_response.1xx",
	"hrsp_2xx":   "http_response.2xx",
	"hrsp_3xx":   "http_response.3xx",
	"hrsp_4xx":   "http_response.4xx",
	"hrsp_5xx":   "http_response.5xx",
	"hrsp_other": "http_response.other",
}

// stringColumns are emitted as string fields, as Telegraf does. Every
// other column is an unsigned integer (lastsess a signed one) or dropped.
var stringColumns = map[string]bool{
	"status": true, "check_status": true, "last_chk": true, "mode": true, "tracked": true,
	"agent_status": true, "last_agt": true, "addr": true, "cookie": true,
}

type colKind uint8

const (
	colUint colKind = iota
	colInt
	colString
	colSkip
)

type column struct {
	kind colKind
	name string // field name as emitted
	key  uint16 // its index in rowPlan.keys, when not skipped
}

// statusField is one state's 0/1 field.
type statusField struct {
	state string
	name  string // "status.UP"
	keep  bool   // passes the field filter
	key   uint16 // index of name in rowPlan.keys, when kept
}

// rowPlan is how the rows of one CSV header become metrics: what each
// column is, worked out once per answer rather than once per cell.
type rowPlan struct {
	cols                          []column
	pxIdx, svIdx, typeIdx, pidIdx int
	statusIdx                     int
	pxTag, svTag                  string
	serverStatus, frontendStatus  []statusField
	// serverCounts are a backend's "servers.<STATE>" fields, in the order
	// of ServerStates.
	serverCounts []statusField
	// keys are the names of the fields kept, which the metrics' text
	// fields index: at most one per two bytes of the header, and the
	// status and count fields, so they fit a uint16.
	keys []string
	// wholeRows is set when most columns are kept: a row's text is then
	// the row copied whole, cheaper than its cells one by one.
	wholeRows bool
}

// newRowPlan maps header to Telegraf's schema. Cells Telegraf drops
// (check_desc, agent_desc) and fields the filter rejects are skipped.
func newRowPlan(header []string, keepNames bool, fields filter.Filter) *rowPlan {
	p := &rowPlan{cols: make([]column, len(header)), pxIdx: -1, svIdx: -1, typeIdx: -1, pidIdx: -1, statusIdx: -1}
	keep := func(name string) bool { return fields == nil || fields.Match(name) }
	for i, h := range header {
		name := h
		if r, ok := fieldRenames[h]; ok && !keepNames {
			name = r
		}
		col := column{kind: colUint, name: name}
		switch {
		case h == "pxname":
			p.pxIdx, p.pxTag, col.kind = i, name, colSkip
		case h == "svname":
			p.svIdx, p.svTag, col.kind = i, name, colSkip
		case h == "type":
			p.typeIdx, col.kind = i, colSkip
		case h == "check_desc" || h == "agent_desc" || h == "":
			col.kind = colSkip
		case h == "lastsess":
			col.kind = colInt
		case stringColumns[h]:
			col.kind = colString
		}
		if h == "pid" {
			p.pidIdx = i
		}
		if h == "status" {
			p.statusIdx = i
		}
		if col.kind != colSkip && !keep(name) {
			col.kind = colSkip
		}
		if col.kind != colSkip {
			col.key = p.key(name)
		}
		p.cols[i] = col
	}
	kept := 0
	for _, c := range p.cols {
		if c.kind != colSkip {
			kept++
		}
	}
	p.wholeRows = 2*kept >= len(p.cols)
	p.serverStatus = p.statusFields(ServerStates, statusFieldPrefix, keep)
	p.frontendStatus = p.statusFields(FrontendStates, statusFieldPrefix, keep)
	p.serverCounts = p.statusFields(ServerStates, serverCountPrefix, keep)
	return p
}

// key adds a field name to the plan's keys and returns its index.
func (p *rowPlan) key(name string) uint16 {
	p.keys = append(p.keys, name)
	return uint16(len(p.keys) - 1) //nolint:gosec // at most 32,768 columns and the status fields
}

func (p *rowPlan) statusFields(states []string, prefix string, keep func(string) bool) []statusField {
	out := make([]statusField, len(states))
	for i, s := range states {
		out[i] = statusField{state: s, name: prefix + s, keep: keep(prefix + s)}
		if out[i].keep {
			out[i].key = p.key(out[i].name)
		}
	}
	return out
}

// canCount reports whether a backend's servers can be counted from this
// header (it has the pxname, type and status columns) and any count field
// passes the field filter.
func (p *rowPlan) canCount() bool {
	if p.pxIdx < 0 || p.typeIdx < 0 || p.statusIdx < 0 {
		return false
	}
	for _, f := range p.serverCounts {
		if f.keep {
			return true
		}
	}
	return false
}

// rowSink turns the rows of one server's answer into metrics.
type rowSink struct {
	acc        telegraf.Accumulator
	plan       *rowPlan
	server     string // server tag
	processNum string // process_num tag; "" takes the row's pid
	ts         time.Time
	types      uint8           // bit per row type to keep; 0 keeps all
	proxies    map[string]bool // proxies to keep; nil keeps all
	log        telegraf.Logger

	// countServers is set when the answer holds the server rows: each
	// BACKEND row then gets its servers counted by state. HAProxy prints a
	// proxy's servers just before its BACKEND row.
	countServers bool
	countPx      []byte  // the proxy whose servers are being counted
	counts       []int64 // per state of ServerStates

	slabs metricSlabs
	// Reused between rows: newRowMetric copies them. text holds the
	// values of the row's fields, which raw cuts.
	raw     []lineproto.TextField
	text    []byte
	tags    []telegraf.Tag
	num     [24]byte          // a number's digits, on their way to text
	strs    map[string]string // interned names and strings
	unknown map[string]bool   // statuses already logged as unknown
}

// maxInterned bounds the strings kept for reuse in one answer.
const maxInterned = 1 << 14

func newRowSink(acc telegraf.Accumulator, plan *rowPlan, server string, ts time.Time, arenas arenaOptions) *rowSink {
	return &rowSink{
		acc: acc, plan: plan, server: server, ts: ts, slabs: metricSlabs{opts: arenas},
		raw:    make([]lineproto.TextField, 0, len(plan.cols)+2*len(ServerStates)),
		text:   make([]byte, 0, 1024),
		tags:   make([]telegraf.Tag, 0, 6),
		strs:   make(map[string]string, 64),
		counts: make([]int64, len(ServerStates)),
	}
}

func (s *rowSink) intern(b []byte) string {
	if v, ok := s.strs[string(b)]; ok {
		return v
	}
	v := string(b)
	if len(s.strs) < maxInterned {
		s.strs[v] = v
	}
	return v
}

// add emits the metric of one complete row. It returns false for a row
// it could not read (an unknown type), which it leaves out.
func (s *rowSink) add(cells [][]byte) bool {
	p := s.plan
	rowType := -1
	if p.typeIdx >= 0 {
		t, ok := parseUint(cells[p.typeIdx])
		if !ok || t >= uint64(len(typeNames)) {
			return false
		}
		rowType = int(t)
	}
	if s.proxies != nil && p.pxIdx >= 0 && !s.proxies[string(cells[p.pxIdx])] {
		return true
	}
	var state string
	var known bool
	if p.statusIdx >= 0 {
		state, known = normalizeStatus(cells[p.statusIdx], vocabulary(rowType))
	}
	if s.countServers {
		// Before the types filter: a stats page's server rows count even
		// when only its backends are kept.
		s.countServer(cells[p.pxIdx], rowType, state)
	}
	if s.types != 0 && rowType >= 0 && s.types&(1<<rowType) == 0 {
		return true
	}
	s.raw, s.text, s.tags = s.raw[:0], s.text[:0], s.tags[:0]
	s.addTag("server", s.server)
	if p.pxIdx >= 0 && len(cells[p.pxIdx]) > 0 {
		s.addTag(p.pxTag, s.intern(cells[p.pxIdx]))
	}
	if p.svIdx >= 0 && len(cells[p.svIdx]) > 0 {
		s.addTag(p.svTag, s.intern(cells[p.svIdx]))
	}
	if rowType >= 0 {
		s.addTag("type", typeNames[rowType])
	}
	switch {
	case s.processNum != "":
		s.addTag("process_num", s.processNum)
	case p.pidIdx >= 0 && len(cells[p.pidIdx]) > 0:
		s.addTag("process_num", s.intern(cells[p.pidIdx]))
	}
	s.addFields(cells)
	if p.statusIdx >= 0 {
		s.addStatus(cells[p.statusIdx], rowType, state, known)
	}
	if s.countServers && rowType == typeBackend {
		s.addServerCounts()
	}
	if len(s.raw) > 0 {
		slices.SortFunc(s.tags, func(a, b telegraf.Tag) int { return strings.Compare(a.Key, b.Key) })
		s.acc.AddMetric(s.slabs.newRowMetric("haproxy", s.tags, s.raw, p.keys, s.text, s.ts))
	}
	return true
}

func (s *rowSink) addTag(key, value string) {
	s.tags = append(s.tags, telegraf.Tag{Key: key, Value: value})
}

// addFields adds the row's cells as text fields: digits in canonical form
// as they are, others (leading zeros, "+1") in the canonical form of
// their value; cells that are not numbers where numbers are due are left
// out.
func (s *rowSink) addFields(cells [][]byte) {
	if s.plan.wholeRows {
		if rec := recordOf(cells); rec != nil {
			s.addRecord(cells, rec)
			return
		}
	}
	for i, c := range cells {
		if len(c) == 0 {
			continue
		}
		col := &s.plan.cols[i]
		switch col.kind {
		case colUint:
			if canonicalUint(c) {
				s.addText(col.key, lineproto.KindUint, c)
			} else if v, ok := parseUint(c); ok {
				s.addText(col.key, lineproto.KindUint, strconv.AppendUint(s.num[:0], v, 10))
			}
		case colInt:
			if v, ok := parseInt(c); ok {
				s.addText(col.key, lineproto.KindInt, strconv.AppendInt(s.num[:0], v, 10))
			}
		case colString:
			s.addText(col.key, lineproto.KindString, c)
		}
	}
}

// addRecord is addFields for a row whose cells are rec cut at its commas:
// rec is copied once and the fields cut from the copy.
func (s *rowSink) addRecord(cells [][]byte, rec []byte) {
	off := len(s.text)
	s.text = append(s.text, rec...)
	for i, c := range cells {
		start := off
		off += len(c) + 1
		if len(c) == 0 {
			continue
		}
		col := &s.plan.cols[i]
		switch col.kind {
		case colUint:
			if canonicalUint(c) {
				s.cut(col.key, lineproto.KindUint, start, len(c))
			} else if v, ok := parseUint(c); ok {
				s.addText(col.key, lineproto.KindUint, strconv.AppendUint(s.num[:0], v, 10))
			}
		case colInt:
			if v, ok := parseInt(c); ok {
				if d := strconv.AppendInt(s.num[:0], v, 10); !bytes.Equal(d, c) {
					s.addText(col.key, lineproto.KindInt, d)
					continue
				}
				s.cut(col.key, lineproto.KindInt, start, len(c))
			}
		case colString:
			s.cut(col.key, lineproto.KindString, start, len(c))
		}
	}
}

// cut adds a field whose value is n bytes of the row's text at off.
func (s *rowSink) cut(key uint16, kind byte, off, n int) {
	s.raw = append(s.raw, lineproto.TextField{Off: uint32(off), Len: uint32(n), Key: key, Kind: kind}) //nolint:gosec // a row is at most MaxLineBytes
}

// addText adds a field whose value is v's bytes.
func (s *rowSink) addText(key uint16, kind byte, v []byte) {
	off := len(s.text)
	s.text = append(s.text, v...)
	s.raw = append(s.raw, lineproto.TextField{Off: uint32(off), Len: uint32(len(v)), Key: key, Kind: kind}) //nolint:gosec // a row is at most MaxLineBytes
}

// canonicalUint reports whether b is a uint64 written as
// strconv.FormatUint writes it: digits, no leading zero, in range.
func canonicalUint(b []byte) bool {
	n := len(b)
	if n == 0 || n > 20 || (b[0] == '0' && n > 1) {
		return false
	}
	for _, c := range b {
		if c-'0' > 9 {
			return false
		}
	}
	return n < 20 || string(b) <= "18446744073709551615"
}

// countServer counts a server row by its state for the BACKEND row of
// its proxy, which comes after it. A row of another proxy starts a new
// count.
func (s *rowSink) countServer(px []byte, rowType int, state string) {
	if !bytes.Equal(px, s.countPx) {
		s.countPx = append(s.countPx[:0], px...)
		clear(s.counts)
	}
	if rowType == typeServer {
		s.counts[stateIndex(ServerStates, state)]++
	}
}

// addServerCounts adds a BACKEND row's "servers.<STATE>" fields, then
// starts the next count.
func (s *rowSink) addServerCounts() {
	for i, f := range s.plan.serverCounts {
		if f.keep {
			s.addText(f.key, lineproto.KindInt, strconv.AppendInt(s.num[:0], s.counts[i], 10))
		}
	}
	clear(s.counts)
}

// addStatus sets the row's one-hot status fields; state is the status
// cell's, normalised.
func (s *rowSink) addStatus(cell []byte, rowType int, state string, known bool) {
	sf := s.plan.serverStatus
	if rowType == typeFrontend || rowType == typeListener {
		sf = s.plan.frontendStatus
	}
	if !known {
		s.logUnknown(cell, rowType)
	}
	// One "0" and one "1" serve every field of the row.
	zero := -1
	for i := range sf {
		if !sf[i].keep {
			continue
		}
		if zero < 0 {
			zero = len(s.text)
			s.text = append(s.text, '0', '1')
		}
		off := zero
		if sf[i].state == state {
			off++
		}
		s.raw = append(s.raw, lineproto.TextField{Off: uint32(off), Len: 1, Key: sf[i].key, Kind: lineproto.KindInt}) //nolint:gosec // a row is at most MaxLineBytes
	}
}

func (s *rowSink) logUnknown(cell []byte, rowType int) {
	if s.log == nil {
		return
	}
	if s.unknown == nil {
		s.unknown = make(map[string]bool)
	}
	if s.unknown[string(cell)] || len(s.unknown) >= 100 {
		return
	}
	s.unknown[string(cell)] = true
	kind := "row"
	if rowType >= 0 {
		kind = typeNames[rowType]
	}
	s.log.Warnf("%s: unknown %s status %q counted as %s%s", s.server, kind, cell, statusFieldPrefix, StateOther)
}
