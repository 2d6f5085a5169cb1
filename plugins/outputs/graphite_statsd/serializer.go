package graphite_statsd

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/filter"
	"github.com/influxdata/telegraf/plugins/serializers/graphite"

	"github.com/hap-monitor/hap-monitor/plugins/common/lineproto"
)

const (
	formatGraphite = "graphite"
	formatStatsd   = "statsd"

	// telegrafDefaultTemplate is what Telegraf's serializer uses when no
	// template is configured.
	telegrafDefaultTemplate = "host.tags.measurement.field"

	// cacheLimit bounds the field-name cache; past it it is emptied and
	// refilled, so a churning set of field names cannot grow memory.
	cacheLimit = 200_000
)

// serializer turns metrics into wire units: Graphite lines
// "path value timestamp\n" or statsd gauges "path:value|g\n" (a negative
// value as the pair "path:0|g\npath:-v|g\n", one unit). Paths are those of
// Telegraf's graphite serializer, byte for byte. With the default strict
// regexp and no tag support it builds them itself: once per metric, the
// sanitised parts of the path before and after the field name, then for
// each field those parts around its sanitised name; otherwise it asks
// Telegraf's serializer.
type serializer struct {
	format     string
	statsdTags bool
	prefix     string
	template   string
	templates  []nameTemplate
	fast       bool
	telegraf   *graphite.Serializer

	// maxUnit is the largest unit allowed; a larger one is skipped and
	// counted in skipped, its path kept in skippedExample.
	maxUnit        int
	skipped        int
	skippedExample string
	// unusable counts values that cannot be sent (strings, NaN, Inf...).
	unusable int

	// entry is the metric's path parts, rebuilt for each metric in the
	// same buffers.
	entry  seriesEntry
	fields map[string]*fieldEntry
	// lastKeys and lastFields remember the field entries of the last
	// metric by position: the next metric of the same input most often
	// has the same field names in the same order.
	lastKeys   []string
	lastFields []*fieldEntry
	// textKeys and textEntries are the field entries of the text fields
	// of the last keys table, by key index.
	textKeys    []string
	textEntries []*fieldEntry
	// splitTemplates and parts serve bucketName.
	splitTemplates map[string][]string
	lastTemplate   string
	lastParts      []string
	// forName's template is forTemplate: the last name's.
	forName, forTemplate string
	parts                []bucketPart

	ts      []byte
	tail    []byte // " timestamp\n"
	tags    []byte
	scratch []byte
}

type nameTemplate struct {
	filter filter.Filter
	value  string
}

// seriesEntry is what a metric's lines share: the bucket name Telegraf's
// SerializeBucketName returns, cut around its FIELDNAME placeholder, with
// both sides sanitised.
type seriesEntry struct {
	empty     bool   // no bucket: Telegraf sends nothing for the metric
	bucket    []byte // raw bucket with FIELDNAME
	hasField  bool   // bucket holds FIELDNAME
	pre, post []byte // raw bucket around the first FIELDNAME
	sanPre    []byte
	sanPost   []byte
	sanFixed  []byte // sanitised bucket, when !hasField
	simple    bool   // pre and post are valid UTF-8: sanitising composes
	preDot    bool   // pre ends with '.'
	postDot   bool   // post starts with '.'
	valuePath []byte // path of the field named "value", built on first use
	hasValue  bool   // valuePath is built
}

type fieldEntry struct {
	san      []byte
	simple   bool // valid UTF-8, not empty, not "value"
	firstDot bool
	lastDot  bool
}

// serializerOptions are the output's options that shape a unit.
type serializerOptions struct {
	Format          string // "graphite" or "statsd"
	StatsdTags      bool
	Prefix          string
	Template        string
	Templates       []string
	StrictRegex     string
	TagSupport      bool
	TagSanitizeMode string
	Separator       string
	// MaxUnit is the largest unit allowed (a line over TCP, a datagram's
	// room over UDP); a larger one is skipped and counted.
	MaxUnit int
}

// skippedCounts is what a serializer left out since it was last asked.
type skippedCounts struct {
	long     int    // units longer than MaxUnit
	example  string // the path of the first of them
	unusable int    // field values that are not numbers (strings, NaN, Inf)
}

// takeSkipped returns what was skipped since the last call and starts
// counting again.
func (s *serializer) takeSkipped() skippedCounts {
	c := skippedCounts{long: s.skipped, example: s.skippedExample, unusable: s.unusable}
	s.skipped, s.skippedExample, s.unusable = 0, "", 0
	return c
}

// newSerializer validates the path options the way Telegraf's serializer
// does and returns a serializer for them.
func newSerializer(o serializerOptions) (*serializer, error) {
	tg := &graphite.Serializer{
		Prefix:          o.Prefix,
		Template:        o.Template,
		StrictRegex:     o.StrictRegex,
		TagSupport:      o.TagSupport,
		TagSanitizeMode: o.TagSanitizeMode,
		Separator:       o.Separator,
		Templates:       o.Templates,
	}
	if err := tg.Init(); err != nil {
		return nil, err
	}
	s := &serializer{
		format:     o.Format,
		statsdTags: o.StatsdTags,
		prefix:     o.Prefix,
		template:   o.Template,
		fast:       !o.TagSupport && o.StrictRegex == "",
		telegraf:   tg,
		fields:     make(map[string]*fieldEntry),
		maxUnit:    o.MaxUnit,

		splitTemplates: make(map[string][]string),
	}
	for i, t := range o.Templates {
		parts := strings.Fields(t)
		switch len(parts) {
		case 1:
			s.template = parts[0]
		case 2:
			f, err := filter.Compile([]string{parts[0]})
			if err != nil {
				return nil, fmt.Errorf("templates[%d] %q: %w", i, t, err)
			}
			s.templates = append(s.templates, nameTemplate{filter: f, value: parts[1]})
		default:
			return nil, fmt.Errorf("templates[%d] %q: want \"[filter] template\"", i, t)
		}
	}
	return s, nil
}

// appendMetric appends m's units to dst and, when ends is not nil, the end
// offset of each unit to *ends.
func (s *serializer) appendMetric(dst []byte, m telegraf.Metric, ends *[]int) []byte {
	if !s.fast {
		return s.appendSlow(dst, m, ends)
	}
	e := s.lookup(m)
	if e.empty {
		return dst
	}
	if s.format == formatGraphite {
		s.ts = strconv.AppendInt(s.ts[:0], m.Time().UnixNano()/1e9, 10)
	} else if s.statsdTags {
		s.tags = appendDogTags(s.tags[:0], m.TagList())
	}
	if tm, ok := m.(lineproto.TextMetric); ok {
		if fields, keys, text, ok := tm.TextFields(); ok {
			return s.appendText(dst, e, fields, keys, text, ends)
		}
	}
	for i, f := range m.FieldList() {
		start := len(dst)
		v, neg, ok := appendValue(s.scratch[:0], f.Value)
		s.scratch = v
		if !ok {
			s.unusable++
			continue
		}
		dst = s.appendPath(dst, e, i, f.Key, nil)
		dst = s.finishUnit(dst, start, v, neg)
		if ends != nil && len(dst) > start {
			*ends = append(*ends, len(dst))
		}
	}
	return dst
}

// appendText is appendMetric's loop for fields that come as text: the
// digits are the value as appendValue writes it (integers as integers),
// copied; strings cannot be sent.
func (s *serializer) appendText(dst []byte, e *seriesEntry, fields []lineproto.TextField, keys []string, text []byte, ends *[]int) []byte {
	// A Graphite line of a plain field is the metric's path halves around
	// the field's name, the digits and the metric's " timestamp\n".
	plainLines := s.format == formatGraphite && e.hasField && e.simple
	if plainLines {
		s.tail = append(append(append(s.tail[:0], ' '), s.ts...), '\n')
	}
	for i, f := range fields {
		if f.Kind == lineproto.KindString {
			s.unusable++
			continue
		}
		start := len(dst)
		v := text[f.Off : f.Off+f.Len]
		fe := s.textField(keys, f.Key)
		if plainLines && fe.simple && !(e.preDot && fe.firstDot) && !(fe.lastDot && e.postDot) {
			dst = append(dst, e.sanPre...)
			dst = append(dst, fe.san...)
			dst = append(dst, e.sanPost...)
			dst = append(dst, ' ')
			dst = append(dst, v...)
			dst = append(dst, s.tail...)
			if len(dst)-start > s.maxUnit {
				dst = s.skip(dst, start)
			}
		} else {
			dst = s.appendPath(dst, e, i, keys[f.Key], fe)
			dst = s.finishUnit(dst, start, v, len(v) > 0 && v[0] == '-')
		}
		if ends != nil && len(dst) > start {
			*ends = append(*ends, len(dst))
		}
	}
	return dst
}

// finishUnit completes the unit whose path starts at start and ends dst.
func (s *serializer) finishUnit(dst []byte, start int, v []byte, neg bool) []byte {
	if s.format == formatGraphite {
		dst = append(dst, ' ')
		dst = append(dst, v...)
		dst = append(dst, ' ')
		dst = append(dst, s.ts...)
		dst = append(dst, '\n')
	} else {
		pathEnd := len(dst)
		statsdName(dst[start:pathEnd])
		if neg {
			// A signed gauge value is a change: set 0 first.
			dst = append(dst, ":0|g"...)
			dst = append(dst, s.tags...)
			dst = append(dst, '\n')
			dst = append(dst, dst[start:pathEnd]...)
		}
		dst = append(dst, ':')
		dst = append(dst, v...)
		dst = append(dst, "|g"...)
		dst = append(dst, s.tags...)
		dst = append(dst, '\n')
	}
	if len(dst)-start > s.maxUnit {
		return s.skip(dst, start)
	}
	return dst
}

// skip drops the unit at dst[start:], too long to send, and counts it.
func (s *serializer) skip(dst []byte, start int) []byte {
	s.skipped++
	if s.skippedExample == "" {
		s.skippedExample = truncate(string(dst[start:]), 120)
	}
	return dst[:start]
}

// statsdName rewrites, in place, the bytes a statsd name cannot hold: ':'
// separates name from value, '|' the type, '@' the sample rate, and a line
// break ends the gauge. Each becomes '_', so a server named "web:3" is
// "web_3" on the statsd wire instead of a broken gauge.
func statsdName(path []byte) {
	for i, c := range path {
		switch c {
		case ':', '|', '@', '\n', '\r':
			path[i] = '_'
		}
	}
}

// appendPath appends the sanitised path of field key, the metric's i-th,
// of series e.
func (s *serializer) appendPath(dst []byte, e *seriesEntry, i int, key string, fe *fieldEntry) []byte {
	if !e.hasField {
		return append(dst, e.sanFixed...)
	}
	if key == "value" {
		if !e.hasValue {
			e.valuePath = appendStrict(e.valuePath[:0], graphite.InsertField(string(e.bucket), key))
			e.hasValue = true
		}
		return append(dst, e.valuePath...)
	}
	if fe == nil {
		fe = s.fieldAt(i, key)
	}
	if !e.simple || !fe.simple || (e.preDot && fe.firstDot) || (fe.lastDot && e.postDot) {
		return appendStrict(dst, string(e.pre)+key+string(e.post))
	}
	dst = append(dst, e.sanPre...)
	dst = append(dst, fe.san...)
	return append(dst, e.sanPost...)
}

// textField returns the entry of keys[k], the key of a text field: by
// its index, for the metrics that share a keys table (an answer's rows).
// The table is kept, so that no other can take its address.
func (s *serializer) textField(keys []string, k uint16) *fieldEntry {
	if unsafe.SliceData(keys) != unsafe.SliceData(s.textKeys) || len(keys) != len(s.textKeys) {
		s.textKeys = keys
		s.textEntries = append(s.textEntries[:0], make([]*fieldEntry, len(keys))...)
	}
	fe := s.textEntries[k]
	if fe == nil {
		fe = s.field(keys[k])
		s.textEntries[k] = fe
	}
	return fe
}

// fieldAt returns the entry of the metric's i-th field, key: the last
// metric's i-th entry when its key is the same, else the cached one.
func (s *serializer) fieldAt(i int, key string) *fieldEntry {
	if i < len(s.lastKeys) && s.lastKeys[i] == key {
		return s.lastFields[i]
	}
	fe := s.field(key)
	if i < len(s.lastKeys) {
		s.lastKeys[i], s.lastFields[i] = key, fe
	} else if i == len(s.lastKeys) && i < 1024 {
		s.lastKeys = append(s.lastKeys, key)
		s.lastFields = append(s.lastFields, fe)
	}
	return fe
}

func (s *serializer) field(key string) *fieldEntry {
	if fe, ok := s.fields[key]; ok {
		return fe
	}
	if len(s.fields) >= cacheLimit {
		clear(s.fields)
	}
	fe := &fieldEntry{
		san:    appendStrict(nil, key),
		simple: key != "" && key != "value" && utf8.ValidString(key),
	}
	if key != "" {
		fe.firstDot, fe.lastDot = key[0] == '.', key[len(key)-1] == '.'
	}
	s.fields[key] = fe
	return fe
}

// lookup returns m's path parts, built in the serializer's buffers: valid
// until the next metric.
func (s *serializer) lookup(m telegraf.Metric) *seriesEntry {
	e := &s.entry
	e.bucket = s.appendBucket(e.bucket[:0], m.Name(), m.TagList(), s.templateFor(m.Name()))
	e.empty, e.hasField, e.hasValue = len(e.bucket) == 0, false, false
	if e.empty {
		return e
	}
	i := bytes.Index(e.bucket, []byte("FIELDNAME"))
	if i < 0 {
		e.sanFixed = appendStrictBytes(e.sanFixed[:0], e.bucket)
		return e
	}
	e.hasField = true
	e.pre, e.post = e.bucket[:i], e.bucket[i+len("FIELDNAME"):]
	e.sanPre = appendStrictBytes(e.sanPre[:0], e.pre)
	e.sanPost = appendStrictBytes(e.sanPost[:0], e.post)
	e.simple = utf8.Valid(e.pre) && utf8.Valid(e.post)
	e.preDot = bytes.HasSuffix(e.pre, []byte("."))
	e.postDot = bytes.HasPrefix(e.post, []byte("."))
	return e
}

func (s *serializer) templateFor(name string) string {
	if s.forName == name && s.forTemplate != "" {
		return s.forTemplate // most metrics follow one of the same name
	}
	t := s.matchTemplate(name)
	s.forName, s.forTemplate = name, t
	return t
}

func (s *serializer) matchTemplate(name string) string {
	for _, t := range s.templates {
		if t.filter.Match(name) {
			return t.value
		}
	}
	if s.template == "" {
		return telegrafDefaultTemplate
	}
	return s.template
}

// appendValue formats a field value as Telegraf's graphite serializer does:
// integers as integers, floats with strconv's 'f' format and the shortest
// precision, booleans as 1 and 0. ok is false for what cannot be sent
// (strings, NaN, Inf, other types). neg reports a leading minus sign.
func appendValue(dst []byte, v any) (out []byte, neg, ok bool) {
	switch v := v.(type) {
	case uint64:
		return strconv.AppendUint(dst, v, 10), false, true
	case int64:
		return strconv.AppendInt(dst, v, 10), v < 0, true
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return dst, false, false
		}
		return strconv.AppendFloat(dst, v, 'f', -1, 64), math.Signbit(v), true
	case bool:
		if v {
			return append(dst, '1'), false, true
		}
		return append(dst, '0'), false, true
	}
	return dst, false, false
}

// appendSlow serialises with Telegraf's serializer and, for statsd,
// rewrites each Graphite line as a gauge.
func (s *serializer) appendSlow(dst []byte, m telegraf.Metric, ends *[]int) []byte {
	out, err := s.telegraf.Serialize(m)
	if err != nil {
		s.unusable += len(m.FieldList())
		return dst
	}
	for _, f := range m.FieldList() {
		if _, _, ok := appendValue(nil, f.Value); !ok {
			s.unusable++
		}
	}
	if s.format == formatStatsd && s.statsdTags {
		s.tags = appendDogTags(s.tags[:0], m.TagList())
	}
	for len(out) > 0 {
		line := out
		if i := bytes.IndexByte(out, '\n'); i >= 0 {
			line, out = out[:i], out[i+1:]
		} else {
			out = nil
		}
		start := len(dst)
		if s.format == formatGraphite {
			dst = append(dst, line...)
			dst = append(dst, '\n')
			if len(dst)-start > s.maxUnit {
				s.skipped++
				if s.skippedExample == "" {
					s.skippedExample = truncate(string(dst[start:]), 120)
				}
				dst = dst[:start]
			}
		} else {
			path, value, ok := splitGraphiteLine(line)
			if !ok {
				continue
			}
			dst = append(dst, path...)
			dst = s.finishUnit(dst, start, value, len(value) > 0 && value[0] == '-')
		}
		if ends != nil && len(dst) > start {
			*ends = append(*ends, len(dst))
		}
	}
	return dst
}

// splitGraphiteLine cuts "path value timestamp" from the right, since only
// the path may hold spaces (in tag values).
func splitGraphiteLine(line []byte) (path, value []byte, ok bool) {
	i := bytes.LastIndexByte(line, ' ')
	if i < 0 {
		return nil, nil, false
	}
	j := bytes.LastIndexByte(line[:i], ' ')
	if j < 0 {
		return nil, nil, false
	}
	return line[:j], line[j+1 : i], true
}

// appendDogTags appends DogStatsD tags "|#k:v,k2:v2"; characters that would
// break the syntax become "_".
func appendDogTags(dst []byte, tags []*telegraf.Tag) []byte {
	if len(tags) == 0 {
		return dst
	}
	dst = append(dst, "|#"...)
	for i, t := range tags {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendDogTagPart(dst, t.Key, true)
		dst = append(dst, ':')
		dst = appendDogTagPart(dst, t.Value, false)
	}
	return dst
}

func appendDogTagPart(dst []byte, s string, key bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ',' || c == '|' || c == '#' || c == '\n' || c == '\r' || c == ' ' || c == '\t':
			c = '_'
		case key && c == ':':
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

func truncate(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
