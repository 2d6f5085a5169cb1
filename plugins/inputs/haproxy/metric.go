package haproxy

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

// rowMetric is a telegraf.Metric built straight from a parsed row: its
// fields and tags live in one backing array each, so a row costs a handful
// of allocations instead of one per field (metric.New takes a map and
// allocates every field). Tags are kept sorted by key, as Telegraf's own
// metrics are. It behaves as metric.New's metrics do, method by method
// (metric_contract_test.go), and is a telegraf.TemplateMetric as they are.
type rowMetric struct {
	name   string
	tags   []*telegraf.Tag
	fields []*telegraf.Field
	tm     time.Time
	vtype  telegraf.ValueType
	// spareTags is room for tags added later (the host tag, global tags):
	// AddTag takes a Tag from it and inserts into the spare capacity of
	// tags, both carved with the metric, instead of allocating.
	spareTags []telegraf.Tag
}

var (
	_ telegraf.Metric         = (*rowMetric)(nil)
	_ telegraf.TemplateMetric = (*rowMetric)(nil)
)

// metricSlabs hands out the storage of rowMetrics in chunks shared by many
// rows, so a row costs no allocation of its own: a chunk is freed once every
// metric carved from it is.
type metricSlabs struct {
	metrics   []rowMetric
	fields    []telegraf.Field
	fieldPtrs []*telegraf.Field
	tags      []telegraf.Tag
	tagPtrs   []*telegraf.Tag
}

// Chunk sizes: a 1000x10 answer's 12,000 rows of ~70 fields take about
// 200 field chunks.
const (
	slabMetrics = 256
	slabFields  = 4096
	slabTags    = 1024
)

// spareTagRoom is how many tags a row's metric can gain without
// allocating: the host tag and a global tag or two.
const spareTagRoom = 2

// carve returns n elements of *slab as a slice of their own (capacity n,
// so appending to it never reaches a neighbour's), starting a new chunk
// of size elements when the current one is used up.
func carve[T any](slab *[]T, n, size int) []T {
	if cap(*slab)-len(*slab) < n {
		*slab = make([]T, 0, max(n, size))
	}
	start := len(*slab)
	*slab = (*slab)[:start+n]
	return (*slab)[start : start+n : start+n]
}

// newRowMetric copies tags (sorted by key) and fields into a new metric.
func (sl *metricSlabs) newRowMetric(name string, tags []telegraf.Tag, fields []telegraf.Field, tm time.Time) *rowMetric {
	m := &carve(&sl.metrics, 1, slabMetrics)[0]
	*m = rowMetric{name: name, tm: tm, vtype: telegraf.Untyped}
	tb := carve(&sl.tags, len(tags)+spareTagRoom, slabTags)
	copy(tb, tags)
	m.spareTags = tb[len(tags):len(tags)]
	m.tags = carve(&sl.tagPtrs, len(tb), slabTags)[:len(tags)]
	for i := range tags {
		m.tags[i] = &tb[i]
	}
	fb := carve(&sl.fields, len(fields), slabFields)
	copy(fb, fields)
	m.fields = carve(&sl.fieldPtrs, len(fb), slabFields)
	for i := range fb {
		m.fields[i] = &fb[i]
	}
	return m
}

func (m *rowMetric) Name() string                 { return m.name }
func (m *rowMetric) TagList() []*telegraf.Tag     { return m.tags }
func (m *rowMetric) FieldList() []*telegraf.Field { return m.fields }
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
	_, ok := m.GetField(key)
	return ok
}

// AddField converts value as Telegraf does (int to int64, uint32 to
// uint64...), by way of metric.New.
func (m *rowMetric) AddField(key string, value any) {
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
	for i, f := range m.fields {
		if f.Key == key {
			m.fields = slices.Delete(m.fields, i, i+1)
			return
		}
	}
}

// Copy returns a deep copy as one of Telegraf's own metrics.
func (m *rowMetric) Copy() telegraf.Metric { return metric.FromMetric(m) }

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
	keys := make([]string, 0, len(m.fields))
	for _, f := range m.fields {
		if !slices.Contains(excludedFields, f.Key) {
			keys = append(keys, f.Key)
		}
	}
	slices.Sort(keys)
	h.Write([]byte(strings.Join(keys, "\n")))
	return h.Sum64()
}
