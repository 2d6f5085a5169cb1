package lineproto

import "github.com/influxdata/telegraf"

// TextField is a field whose value is held as the text it is written as,
// cut from a metric's text: a number that came as decimal digits goes out
// as the same digits, with no integer in between.
type TextField struct {
	Off, Len uint32 // the value's bytes: text[Off : Off+Len]
	Key      uint16 // the field's key: keys[Key]
	// Kind is what the value is: KindUint (canonical decimal digits of a
	// uint64, as strconv.FormatUint writes them), KindInt (canonical
	// digits of an int64, as strconv.FormatInt writes them), or
	// KindString (the bytes of a string value, which may need escaping
	// or be invalid UTF-8).
	Kind byte
}

// Kinds of TextField.
const (
	KindUint   = 'u'
	KindInt    = 'i'
	KindString = 's'
)

// TextMetric is a telegraf.Metric that can hand over its fields as text.
// Its FieldList and the like hold the same values as Go types (uint64,
// int64, string); writers that know TextMetric copy the text instead.
type TextMetric interface {
	telegraf.Metric
	// TextFields returns the fields in FieldList's order, the keys they
	// index and the text their values are cut from. ok is false when the
	// fields are not held as text (any more): use FieldList. The slices
	// are valid until the metric is changed.
	TextFields() (fields []TextField, keys []string, text []byte, ok bool)
}
