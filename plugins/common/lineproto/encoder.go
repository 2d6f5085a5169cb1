// Package lineproto reads and writes metrics as influx line protocol with
// nanosecond timestamps, the wire of Telegraf's execd plugins and the
// format of the Graphite output's spool.
package lineproto

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/influxdata/telegraf"
)

// Encoder writes metrics as influx line protocol: nanosecond timestamps,
// names, keys and tags checked (strict mode). It buffers the lines until
// Flush.
type Encoder struct {
	enc    lineprotocol.Encoder
	w      io.Writer
	sorted bool
	fields []*telegraf.Field // scratch for sorting

	// For metrics whose fields come as text (TextMetric): the last keys
	// table (kept, so that no other takes its address), each of its keys
	// as written after a field, ",key=" (nil for a key that is not
	// plain), and the sorted orders of the last few sequences of keys.
	keyTable  []string
	keyEq     [][]byte
	orders    [4]fieldOrder
	nextOrder int
}

// fieldOrder is the order in which SortFields writes the fields of a
// metric whose field keys are table's keys idx, in that order:
// fields[perm[0]] first.
type fieldOrder struct {
	table []string
	idx   []uint16
	perm  []int
}

// NewEncoder returns an encoder writing to w.
func NewEncoder(w io.Writer) *Encoder {
	e := &Encoder{w: w}
	e.enc.SetPrecision(lineprotocol.Nanosecond)
	e.enc.SetLax(false)
	return e
}

// SortFields makes the encoder write each metric's fields sorted by key,
// as Telegraf's --test does, so that two outputs can be compared line by
// line.
func (e *Encoder) SortFields() { e.sorted = true }

// Encode appends m to the encoder's buffer. A field whose value line
// protocol cannot hold (NaN, Inf, an unknown type) is left out; a metric
// left with no field, or with a name, key or tag line protocol cannot carry
// (a newline, invalid UTF-8), is skipped and reported. Either way the
// buffer holds only whole, valid lines.
func (e *Encoder) Encode(m telegraf.Metric) error {
	if tm, ok := m.(TextMetric); ok {
		if fields, keys, text, ok := tm.TextFields(); ok && e.encodeText(m, fields, keys, text) {
			return nil
		}
	}
	fields := m.FieldList()
	if !slices.ContainsFunc(fields, func(f *telegraf.Field) bool {
		_, ok := fieldValue(f.Value)
		return ok
	}) {
		return fmt.Errorf("metric %s has no field line protocol can hold", m.Name())
	}
	if e.sorted {
		e.fields = append(e.fields[:0], fields...)
		slices.SortFunc(e.fields, func(a, b *telegraf.Field) int { return strings.Compare(a.Key, b.Key) })
		fields = e.fields
	}
	mark := len(e.enc.Bytes())
	// Each metric starts the encoder afresh, so that its errors do not
	// number the metric among the lines waiting in the buffer.
	e.enc.SetBuffer(e.enc.Bytes())
	e.enc.StartLine(m.Name())
	for _, t := range m.TagList() {
		if t.Key == "" || t.Value == "" {
			continue
		}
		e.enc.AddTag(t.Key, t.Value)
	}
	for _, f := range fields {
		if v, ok := fieldValue(f.Value); ok {
			e.enc.AddField(f.Key, v)
		}
	}
	e.enc.EndLine(m.Time())
	if err := e.enc.Err(); err != nil {
		// lineprotocol.Encoder already cuts its buffer back to the start
		// of the failed line; cutting back to mark does not rely on it.
		e.enc.SetBuffer(e.enc.Bytes()[:mark])
		return fmt.Errorf("encoding metric %s: %w", m.Name(), err)
	}
	return nil
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// encodeText appends the line of a metric whose fields come as text,
// copying the digits: the line lineprotocol.Encoder writes for the same
// values, byte for byte. It returns false, having written nothing, for
// anything that is not plain (a name or key to escape or check further,
// a tag value with more than a space, comma or equals sign to escape,
// tags out of order, a time out of range, no field): Encode then takes
// the general way, which writes or reports it.
func (e *Encoder) encodeText(m telegraf.Metric, fields []TextField, keys []string, text []byte) bool {
	if len(fields) == 0 || len(keys) == 0 {
		return false
	}
	name := m.Name()
	tm := m.Time()
	if !plain(name) || (!tm.IsZero() && (tm.Before(minTime) || tm.After(maxTime))) {
		return false
	}
	if !sameTable(keys, e.keyTable) {
		e.keyTable = keys
		e.keyEq = e.keyEq[:0]
		for _, k := range keys {
			var eq []byte
			if plain(k) {
				eq = append(append(append(eq, ','), k...), '=')
			}
			e.keyEq = append(e.keyEq, eq)
		}
	}
	buf := e.enc.Bytes()
	buf = append(buf, name...)
	prev := ""
	for _, t := range m.TagList() {
		if t.Key == "" || t.Value == "" {
			continue
		}
		if t.Key <= prev || !plain(t.Key) || !escapableTagValue(t.Value) {
			return false
		}
		prev = t.Key
		buf = append(buf, ',')
		buf = append(buf, t.Key...)
		buf = append(buf, '=')
		buf = appendTagValue(buf, t.Value)
	}
	var perm []int
	if e.sorted {
		perm = e.order(fields, keys)
	}
	first := -1 // where the first field's ',' is, to become ' '
	for i := range fields {
		f := &fields[i]
		if perm != nil {
			f = &fields[perm[i]]
		}
		eq := e.keyEq[f.Key]
		if eq == nil {
			return false
		}
		v := text[f.Off : f.Off+f.Len]
		if f.Kind == KindString && !utf8.Valid(v) {
			continue // as lineprotocol.StringValue refuses it
		}
		if first < 0 {
			first = len(buf)
		}
		buf = append(buf, eq...)
		switch f.Kind {
		case KindUint, KindInt:
			buf = append(buf, v...)
			buf = append(buf, f.Kind)
		default:
			buf = appendQuoted(buf, v)
		}
	}
	if first < 0 {
		return false // no field: the general way reports it
	}
	buf[first] = ' '
	if !tm.IsZero() {
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, tm.UnixNano(), 10)
	}
	buf = append(buf, '\n')
	e.enc.SetBuffer(buf)
	return true
}

// plain reports whether s goes into a line as it is, as a measurement,
// tag key, tag value or field key: not empty, printable ASCII with
// nothing to escape (space, comma, equals sign) and no backslash, so
// valid for lineprotocol.Encoder's strict checks.
func plain(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == ',' || c == '=' || c == '\\' {
			return false
		}
	}
	return true
}

// escapableTagValue reports whether s goes into a line as a tag value
// with appendTagValue: printable ASCII without backslash (a space, comma
// or equals sign is escaped), as lineprotocol.Encoder's strict checks
// take it.
func escapableTagValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// appendTagValue appends a tag value as lineprotocol writes it: a
// backslash before each space, comma and equals sign.
func appendTagValue(buf []byte, s string) []byte {
	for len(s) > 0 {
		i := strings.IndexAny(s, " ,=")
		if i < 0 {
			return append(buf, s...)
		}
		buf = append(buf, s[:i]...)
		buf = append(buf, '\\', s[i])
		s = s[i+1:]
	}
	return buf
}

// appendQuoted appends a string field value as lineprotocol writes it:
// quoted, with backslash, quote, newline, carriage return and tab
// escaped.
func appendQuoted(buf, v []byte) []byte {
	buf = append(buf, '"')
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != '\\' && v[i] != '"' && v[i] != '\n' && v[i] != '\r' && v[i] != '\t' {
			i++
		}
		buf = append(buf, v[:i]...)
		if i == len(v) {
			break
		}
		switch v[i] {
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		default:
			buf = append(buf, '\\', v[i])
		}
		v = v[i+1:]
	}
	return append(buf, '"')
}

// order returns the order in which SortFields writes fields: by key, as
// the general way sorts them (the same sort on the same sequence, so the
// same order, duplicate keys included). The orders of the last few key
// sequences are kept: rows of one type share theirs.
func (e *Encoder) order(fields []TextField, keys []string) []int {
	for i := range e.orders {
		o := &e.orders[i]
		if len(o.idx) != len(fields) || !sameTable(keys, o.table) {
			continue
		}
		same := true
		for j := range fields {
			if o.idx[j] != fields[j].Key {
				same = false
				break
			}
		}
		if same {
			return o.perm
		}
	}
	o := &e.orders[e.nextOrder]
	e.nextOrder = (e.nextOrder + 1) % len(e.orders)
	o.table, o.idx, o.perm = keys, o.idx[:0], o.perm[:0]
	for j, f := range fields {
		o.idx = append(o.idx, f.Key)
		o.perm = append(o.perm, j)
	}
	slices.SortFunc(o.perm, func(a, b int) int { return strings.Compare(keys[o.idx[a]], keys[o.idx[b]]) })
	return o.perm
}

// sameTable reports whether a and b are the same keys table (not just
// equal ones).
func sameTable(a, b []string) bool {
	return len(a) == len(b) && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// Len is the number of bytes of encoded lines not yet flushed.
func (e *Encoder) Len() int { return len(e.enc.Bytes()) }

// Flush writes the buffered lines to the writer and empties the buffer.
func (e *Encoder) Flush() error {
	buf := e.enc.Bytes()
	if len(buf) == 0 {
		return nil
	}
	_, err := e.w.Write(buf)
	e.enc.Reset()
	return err
}

// fieldValue converts a Telegraf field value; false if line protocol
// cannot hold it.
func fieldValue(v any) (lineprotocol.Value, bool) {
	switch v := v.(type) {
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return lineprotocol.Value{}, false
		}
		return lineprotocol.FloatValue(v)
	case float32:
		return fieldValue(float64(v))
	case int64:
		return lineprotocol.IntValue(v), true
	case int:
		return lineprotocol.IntValue(int64(v)), true
	case int32:
		return lineprotocol.IntValue(int64(v)), true
	case uint64:
		return lineprotocol.UintValue(v), true
	case uint:
		return lineprotocol.UintValue(uint64(v)), true
	case uint32:
		return lineprotocol.UintValue(uint64(v)), true
	case bool:
		return lineprotocol.BoolValue(v), true
	case string:
		return lineprotocol.StringValue(v)
	case time.Duration:
		return lineprotocol.IntValue(int64(v)), true
	default:
		return lineprotocol.Value{}, false
	}
}
