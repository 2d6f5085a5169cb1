// Package lineproto reads and writes metrics as influx line protocol with
// nanosecond timestamps, the wire of Telegraf's execd plugins and the
// format of the Graphite output's spool.
package lineproto

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

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
