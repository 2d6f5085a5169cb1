package haproxy

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/hap-monitor/hap-monitor/plugins/common/lineproto"
)

// rowMetric is a telegraf.Metric built straight from a parsed row. Its
// fields are held as text (lineproto.TextMetric): each value is the
// cell's own decimal digits, cut from a copy of the row, with no integer
// and no boxed value in between; writers that know TextMetric copy the
// digits, and FieldList and the like turn them into Telegraf's values
// (uint64, int64, string) on first use, after which the metric holds
// those. A row costs no allocation of its own: its metric, tags and text
// are carved from chunks shared by many rows. Tags are kept sorted by
// key, as Telegraf's own metrics are. It behaves as metric.New's metrics
// do, method by method (metric_contract_test.go), and is a
// telegraf.TemplateMetric as they are.
type rowMetric struct {
	name  string
	tags  []*telegraf.Tag
	tm    time.Time
	vtype telegraf.ValueType
	// spareTags is room for tags added later (the host tag, global tags):
	// AddTag takes a Tag from it and inserts into the spare capacity of
	// tags, both carved with the metric, instead of allocating.
	spareTags []telegraf.Tag

	// While isText, the fields are raw: values cut from text, keys from
	// keys (the answer's, shared and never changed). Otherwise fields
	// holds them.
	isText bool
	raw    []lineproto.TextField
	keys   []string
	text   []byte
	fields []*telegraf.Field

	// arena is where the metric was carved from, until released.
	arena *rowArena
}

var (
	_ telegraf.Metric         = (*rowMetric)(nil)
	_ telegraf.TemplateMetric = (*rowMetric)(nil)
	_ lineproto.TextMetric    = (*rowMetric)(nil)
)

// metricSlabs hands out the storage of rowMetrics from arenas shared by
// many rows, so a row costs no allocation of its own.
type metricSlabs struct {
	cur  *rowArena // the arena rows are carved from; it holds one reference
	opts arenaOptions
}

// arenaOptions are the plugin's handling of released arenas; the zero
// value is production's: recycle them, unpoisoned.
type arenaOptions struct {
	// keep leaves released arenas to the collector instead of the pool
	// (tests compare both).
	keep bool
	// poison makes a released arena's text and fields garbage before it
	// goes back to the pool (its metrics and tags are zeroed anyway), so
	// that a test sees any use of a metric after its release.
	poison bool
}

// rowArena is the storage of the metrics of a few hundred rows. Only the
// metrics and tags hold pointers: the fields and the text the collector
// never scans. Once every metric carved from it has been released (see
// rowMetric.Release) and the sink has moved on, it goes back to a pool and
// serves the rows of a later answer: a gather whose metrics are written
// out as they come (the execd input) allocates nothing per row. Metrics
// never released keep it from the pool, and the collector frees it as
// any other memory.
type rowArena struct {
	refs    atomic.Int32 // metrics not released, plus one while carved from
	pooled  bool         // of the standard size: it goes back to the pool
	opts    arenaOptions // of the sink it was last carved for
	metrics []rowMetric
	raw     []lineproto.TextField
	text    []byte
	tags    []telegraf.Tag
	tagPtrs []*telegraf.Tag
}

// Arena sizes: about 180 rows of every field of HAProxy 2.6 (~85 fields,
// ~270 bytes), 400 KB.
const (
	arenaRows   = 256
	arenaFields = 16 << 10
	arenaText   = 64 << 10
	arenaTags   = 8 * arenaRows
)

// spareTagRoom is how many tags a row's metric can gain without
// allocating: the host tag and a global tag or two.
const spareTagRoom = 2

var arenaPool = sync.Pool{New: func() any { return newArena(arenaRows, arenaFields, arenaText, arenaTags, true) }}

func newArena(rows, fields, text, tags int, pooled bool) *rowArena {
	return &rowArena{
		pooled:  pooled,
		metrics: make([]rowMetric, 0, rows),
		raw:     make([]lineproto.TextField, 0, fields),
		text:    make([]byte, 0, text),
		tags:    make([]telegraf.Tag, 0, tags),
		tagPtrs: make([]*telegraf.Tag, 0, tags),
	}
}

// fits reports whether a row of that many tags, fields and bytes of text
// can be carved from a.
func (a *rowArena) fits(tags, fields, text int) bool {
	return len(a.metrics) < cap(a.metrics) && cap(a.raw)-len(a.raw) >= fields &&
		cap(a.text)-len(a.text) >= text && cap(a.tags)-len(a.tags) >= tags
}

// release drops one reference; the last one puts a pooled arena back,
// emptied of what its metrics pointed to.
func (a *rowArena) release() {
	if a.refs.Add(-1) != 0 || !a.pooled || a.opts.keep {
		return
	}
	if a.opts.poison {
		for i := range a.text {
			a.text[i] = 0xff
		}
		for i := range a.raw {
			a.raw[i] = lineproto.TextField{Off: 1 << 31, Len: 1 << 31, Key: 1<<16 - 1}
		}
	}
	clear(a.metrics)
	clear(a.tags)
	clear(a.tagPtrs)
	a.metrics, a.raw, a.text, a.tags, a.tagPtrs = a.metrics[:0], a.raw[:0], a.text[:0], a.tags[:0], a.tagPtrs[:0]
	arenaPool.Put(a)
}

// carve returns the next n elements of *slab as a slice of their own
// (capacity n, so appending to it never reaches a neighbour's).
func carve[T any](slab *[]T, n int) []T {
	start := len(*slab)
	*slab = (*slab)[:start+n]
	return (*slab)[start : start+n : start+n]
}

// newRowMetric copies tags (sorted by key), the row's fields and their
// text into a new metric; keys are kept as they are.
func (sl *metricSlabs) newRowMetric(name string, tags []telegraf.Tag, raw []lineproto.TextField, keys []string, text []byte, tm time.Time) *rowMetric {
	nt := len(tags) + spareTagRoom
	if sl.cur == nil || !sl.cur.fits(nt, len(raw), len(text)) {
		if sl.cur != nil {
			sl.cur.release()
		}
		sl.cur = arenaPool.Get().(*rowArena)
		if !sl.cur.fits(nt, len(raw), len(text)) { // a row larger than an arena
			sl.cur = newArena(1, len(raw), len(text), nt, false)
		}
		sl.cur.refs.Store(1)
		sl.cur.opts = sl.opts
	}
	a := sl.cur
	a.refs.Add(1)
	m := &carve(&a.metrics, 1)[0]
	*m = rowMetric{name: name, tm: tm, vtype: telegraf.Untyped, isText: true, keys: keys, arena: a}
	tb := carve(&a.tags, nt)
	copy(tb, tags)
	m.spareTags = tb[len(tags):len(tags)]
	m.tags = carve(&a.tagPtrs, nt)[:len(tags)]
	for i := range tags {
		m.tags[i] = &tb[i]
	}
	m.raw = carve(&a.raw, len(raw))
	copy(m.raw, raw)
	m.text = carve(&a.text, len(text))
	copy(m.text, text)
	return m
}

// Release gives the metric's storage back, to serve the rows of a later
// answer. It is for the last holder of the metric: whoever calls it is
// done with the metric, and so is everyone it was handed to. A metric
// must be released at most once; one never released is freed by the
// collector. Copies are never carved from an arena: releasing one does
// nothing.
func (m *rowMetric) Release() {
	if a := m.arena; a != nil {
		m.arena = nil
		a.release()
	}
}

// TextFields hands over the fields as text while the metric holds them so.
func (m *rowMetric) TextFields() ([]lineproto.TextField, []string, []byte, bool) {
	return m.raw, m.keys, m.text, m.isText
}

// value is a raw field's value as Telegraf holds it.
func (m *rowMetric) value(f lineproto.TextField) any {
	t := m.text[f.Off : f.Off+f.Len]
	switch f.Kind {
	case lineproto.KindUint:
		v, _ := parseUint(t)
		return v
	case lineproto.KindInt:
		v, _ := parseInt(t)
		return v
	}
	return string(t)
}

// materialize turns raw fields into Telegraf's, for good.
func (m *rowMetric) materialize() {
	if !m.isText {
		return
	}
	fb := make([]telegraf.Field, len(m.raw))
	m.fields = make([]*telegraf.Field, len(m.raw))
	for i, f := range m.raw {
		fb[i] = telegraf.Field{Key: m.keys[f.Key], Value: m.value(f)}
		m.fields[i] = &fb[i]
	}
	m.isText, m.raw, m.keys, m.text = false, nil, nil, nil
}

func (m *rowMetric) Name() string             { return m.name }
func (m *rowMetric) TagList() []*telegraf.Tag { return m.tags }
func (m *rowMetric) FieldList() []*telegraf.Field {
	m.materialize()
	return m.fields
}
func (m *rowMetric) Time() time.Time              { return m.tm }
func (m *rowMetric) Type() telegraf.ValueType     { return m.vtype }
func (m *rowMetric) SetName(name string)          { m.name = name }
func (m *rowMetric) AddPrefix(prefix string)      { m.name = prefix + m.name }
func (m *rowMetric) AddSuffix(suffix string)      { m.name += suffix }
func (m *rowMetric) SetTime(t time.Time)          { m.tm = t }
func (m *rowMetric) SetType(t telegraf.ValueType) { m.vtype = t }
func (*rowMetric) Accept()                        {}
func (*rowMetric) Reject()                        {}
func (*rowMetric) Drop()                          {}

func (m *rowMetric) String() string {
	return fmt.Sprintf("%s %v %v %d", m.name, m.Tags(), m.Fields(), m.tm.UnixNano())
}

func (m *rowMetric) Tags() map[string]string {
	out := make(map[string]string, len(m.tags))
	for _, t := range m.tags {
		out[t.Key] = t.Value
	}
	return out
}

func (m *rowMetric) Fields() map[string]any {
	if m.isText {
		out := make(map[string]any, len(m.raw))
		for _, f := range m.raw {
			out[m.keys[f.Key]] = m.value(f)
		}
		return out
	}
	out := make(map[string]any, len(m.fields))
	for _, f := range m.fields {
		out[f.Key] = f.Value
	}
	return out
}

func (m *rowMetric) GetTag(key string) (string, bool) {
	for _, t := range m.tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

// Tag returns the value of the tag key, "" if there is none (for
// templates).
func (m *rowMetric) Tag(key string) string {
	v, _ := m.GetTag(key)
	return v
}

func (m *rowMetric) HasTag(key string) bool {
	_, ok := m.GetTag(key)
	return ok
}

// AddTag sets the tag key, keeping the tags sorted by key. A new tag is
// taken from the metric's spare room while it lasts.
func (m *rowMetric) AddTag(key, value string) {
	i := 0
	for i < len(m.tags) && m.tags[i].Key < key {
		i++
	}
	if i < len(m.tags) && m.tags[i].Key == key {
		m.tags[i].Value = value
		return
	}
	var t *telegraf.Tag
	if n := len(m.spareTags); n < cap(m.spareTags) {
		m.spareTags = m.spareTags[:n+1]
		t = &m.spareTags[n]
		*t = telegraf.Tag{Key: key, Value: value}
	} else {
		t = &telegraf.Tag{Key: key, Value: value}
	}
	m.tags = slices.Insert(m.tags, i, t)
}

func (m *rowMetric) RemoveTag(key string) {
	for i, t := range m.tags {
		if t.Key == key {
			m.tags = slices.Delete(m.tags, i, i+1)
			return
		}
	}
}

func (m *rowMetric) GetField(key string) (any, bool) {
	if m.isText {
		for _, f := range m.raw {
			if m.keys[f.Key] == key {
				return m.value(f), true
			}
		}
		return nil, false
	}
	for _, f := range m.fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

// Field returns the value of the field key, nil if there is none (for
// templates).
func (m *rowMetric) Field(key string) any {
	v, _ := m.GetField(key)
	return v
}

func (m *rowMetric) HasField(key string) bool {
	if m.isText {
		for _, f := range m.raw {
			if m.keys[f.Key] == key {
				return true
			}
		}
		return false
	}
	_, ok := m.GetField(key)
	return ok
}

// AddField converts value as Telegraf does (int to int64, uint32 to
// uint64...), by way of metric.New.
func (m *rowMetric) AddField(key string, value any) {
	m.materialize()
	conv, _ := metric.New("", nil, map[string]any{key: value}, m.tm).GetField(key)
	for i, f := range m.fields {
		if f.Key == key {
			m.fields[i] = &telegraf.Field{Key: key, Value: conv}
			return
		}
	}
	m.fields = append(m.fields, &telegraf.Field{Key: key, Value: conv})
}

func (m *rowMetric) RemoveField(key string) {
	if m.isText {
		for i, f := range m.raw {
			if m.keys[f.Key] == key {
				m.raw = slices.Delete(m.raw, i, i+1)
				return
			}
		}
		return
	}
	for i, f := range m.fields {
		if f.Key == key {
			m.fields = slices.Delete(m.fields, i, i+1)
			return
		}
	}
}

// Copy returns a deep copy: its own tags, and its own fields, as text
// while the metric holds them so.
func (m *rowMetric) Copy() telegraf.Metric {
	c := &rowMetric{name: m.name, tm: m.tm, vtype: m.vtype, isText: m.isText, keys: m.keys}
	tb := make([]telegraf.Tag, len(m.tags), len(m.tags)+spareTagRoom)
	c.tags = make([]*telegraf.Tag, len(m.tags), cap(tb))
	for i, t := range m.tags {
		tb[i] = *t
		c.tags[i] = &tb[i]
	}
	c.spareTags = tb[len(tb):]
	if m.isText {
		c.raw = slices.Clone(m.raw)
		c.text = slices.Clone(m.text)
		return c
	}
	fb := make([]telegraf.Field, len(m.fields))
	c.fields = make([]*telegraf.Field, len(m.fields))
	for i, f := range m.fields {
		fb[i] = *f
		c.fields[i] = &fb[i]
	}
	return c
}

// FNV-1a, as hash/fnv's New64a, over strings without converting them.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func fnvLine(h uint64, s string) uint64 {
	h = fnvString(h, s)
	h ^= '\n'
	return h * fnvPrime
}

// HashID hashes the name and tags as Telegraf's metrics do.
func (m *rowMetric) HashID() uint64 {
	h := fnvLine(fnvOffset, m.name)
	for _, t := range m.tags {
		h = fnvLine(fnvLine(h, t.Key), t.Value)
	}
	return h
}

func (m *rowMetric) HashIDWithFieldsFiltered(excludedTags, excludedFields []string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(m.name + "\n"))
	for _, t := range m.tags {
		if !slices.Contains(excludedTags, t.Key) {
			h.Write([]byte(t.Key + "\n" + t.Value + "\n"))
		}
	}
	keys := make([]string, 0, max(len(m.fields), len(m.raw)))
	for _, f := range m.raw {
		if k := m.keys[f.Key]; !slices.Contains(excludedFields, k) {
			keys = append(keys, k)
		}
	}
	for _, f := range m.fields {
		if !slices.Contains(excludedFields, f.Key) {
			keys = append(keys, f.Key)
		}
	}
	slices.Sort(keys)
	h.Write([]byte(strings.Join(keys, "\n")))
	return h.Sum64()
}
