package haproxy

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/filter"
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
}

// statusField is one state's 0/1 field.
type statusField struct {
	state string
	name  string // "status.UP"
	keep  bool   // passes the field filter
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
		p.cols[i] = col
	}
	p.serverStatus = statusFields(ServerStates, statusFieldPrefix, keep)
	p.frontendStatus = statusFields(FrontendStates, statusFieldPrefix, keep)
	p.serverCounts = statusFields(ServerStates, serverCountPrefix, keep)
	return p
}

func statusFields(states []string, prefix string, keep func(string) bool) []statusField {
	out := make([]statusField, len(states))
	for i, s := range states {
		out[i] = statusField{state: s, name: prefix + s, keep: keep(prefix + s)}
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
	// Reused between rows: newRowMetric copies them.
	fields  []telegraf.Field
	tags    []telegraf.Tag
	strs    map[string]string // interned names and strings
	unknown map[string]bool   // statuses already logged as unknown
}

// maxInterned bounds the strings kept for reuse in one answer.
const maxInterned = 1 << 14

func newRowSink(acc telegraf.Accumulator, plan *rowPlan, server string, ts time.Time) *rowSink {
	return &rowSink{
		acc: acc, plan: plan, server: server, ts: ts,
		fields: make([]telegraf.Field, 0, len(plan.cols)+2*len(ServerStates)),
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
	s.fields, s.tags = s.fields[:0], s.tags[:0]
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
	if len(s.fields) > 0 {
		slices.SortFunc(s.tags, func(a, b telegraf.Tag) int { return strings.Compare(a.Key, b.Key) })
		s.acc.AddMetric(s.slabs.newRowMetric("haproxy", s.tags, s.fields, s.ts))
	}
	return true
}

func (s *rowSink) addTag(key, value string) {
	s.tags = append(s.tags, telegraf.Tag{Key: key, Value: value})
}

// The one-hot values, boxed once.
var zero, one any = int64(0), int64(1)

func (s *rowSink) addFields(cells [][]byte) {
	for i, c := range cells {
		if len(c) == 0 {
			continue
		}
		col := &s.plan.cols[i]
		switch col.kind {
		case colUint:
			if v, ok := parseUint(c); ok {
				s.fields = append(s.fields, telegraf.Field{Key: col.name, Value: v})
			}
		case colInt:
			if v, ok := parseInt(c); ok {
				s.fields = append(s.fields, telegraf.Field{Key: col.name, Value: v})
			}
		case colString:
			s.fields = append(s.fields, telegraf.Field{Key: col.name, Value: s.intern(c)})
		}
	}
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
			s.fields = append(s.fields, telegraf.Field{Key: f.name, Value: s.counts[i]})
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
	for i := range sf {
		if !sf[i].keep {
			continue
		}
		v := zero
		if sf[i].state == state {
			v = one
		}
		s.fields = append(s.fields, telegraf.Field{Key: sf[i].name, Value: v})
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
