package graphite_statsd

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

// The spool keeps, between runs, the metrics a run could not deliver: one
// file per output (named after its format, transport and servers) in
// spool_dir, holding the metrics as influx line protocol with nanosecond
// timestamps, so the next run sends them with their own times under its
// own paths. It never holds more than metric_buffer_limit metrics.

type spoolState struct {
	path    string
	pending int // metrics at the head of the buffer that came from the file
	loaded  bool
}

// released is told that the n oldest buffered metrics left the buffer;
// once all of the spooled ones have, the file goes.
func (s *spoolState) released(n int) {
	if !s.loaded {
		return
	}
	s.pending -= n
	if s.pending <= 0 {
		s.loaded, s.pending = false, 0
		os.Remove(s.path) //nolint:errcheck // already gone is fine; Close rewrites it if needed
	}
}

func (o *GraphiteStatsd) spoolPath() string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\n%s\n%s", o.Format, o.Transport, strings.Join(o.Servers, ","))
	return filepath.Join(o.SpoolDir, fmt.Sprintf("graphite_statsd-%016x.lp", h.Sum64()))
}

// loadSpool puts the metrics of a previous run's spool file at the head of
// the buffer. A damaged file is moved aside, not fatal.
func (o *GraphiteStatsd) loadSpool() error {
	if err := os.MkdirAll(o.SpoolDir, 0o750); err != nil {
		return err
	}
	o.spool.path = o.spoolPath()
	data, err := os.ReadFile(o.spool.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	metrics, bad := decodeSpool(data)
	if bad != nil {
		aside := o.spool.path + ".bad"
		o.Log.Errorf("spool %s: %v; kept %d metrics, file moved to %s", o.spool.path, bad, len(metrics), aside)
		if err := os.Rename(o.spool.path, aside); err != nil {
			return err
		}
	}
	if len(metrics) == 0 {
		os.Remove(o.spool.path) //nolint:errcheck // may already be moved aside
		return nil
	}
	o.Log.Infof("loaded %d undelivered metrics from %s; they go first", len(metrics), o.spool.path)
	o.buf = append(metrics, o.buf...)
	o.spool.pending, o.spool.loaded = len(metrics), bad == nil
	return nil
}

// saveSpool writes the buffer to the spool file atomically (temporary file,
// sync, rename), or removes the file when nothing is left.
func (o *GraphiteStatsd) saveSpool() error {
	if o.spool.path == "" {
		o.spool.path = o.spoolPath()
	}
	if len(o.buf) == 0 {
		if err := os.Remove(o.spool.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("spool %s: %w", o.spool.path, err)
		}
		return nil
	}
	data, skipped := encodeSpool(o.buf)
	if skipped > 0 {
		o.Log.Warnf("spool: %d metrics cannot be written as line protocol and are lost", skipped)
	}
	if err := writeAtomic(o.spool.path, data); err != nil {
		return fmt.Errorf("spool %s: %w", o.spool.path, err)
	}
	o.Log.Warnf("%d undelivered metrics saved to %s; the next run sends them first", len(o.buf)-skipped, o.spool.path)
	return nil
}

func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name()) //nolint:errcheck // best effort cleanup
	}
	return err
}

func encodeSpool(metrics []telegraf.Metric) (data []byte, skipped int) {
	var enc lineprotocol.Encoder
	enc.SetPrecision(lineprotocol.Nanosecond)
	for _, m := range metrics {
		mark := len(enc.Bytes())
		if !encodeMetric(&enc, m) {
			// Drop the partial line the failed metric left.
			enc.SetBuffer(enc.Bytes()[:mark])
			enc.ClearErr()
			skipped++
		}
	}
	return enc.Bytes(), skipped
}

func encodeMetric(enc *lineprotocol.Encoder, m telegraf.Metric) bool {
	n := 0
	enc.StartLine(m.Name())
	for _, t := range m.TagList() {
		if t.Key != "" && t.Value != "" {
			enc.AddTag(t.Key, t.Value)
		}
	}
	for _, f := range m.FieldList() {
		if v, ok := spoolValue(f.Value); ok {
			enc.AddField(f.Key, v)
			n++
		}
	}
	if n == 0 {
		return false
	}
	enc.EndLine(m.Time())
	return enc.Err() == nil
}

func spoolValue(v any) (lineprotocol.Value, bool) {
	switch v := v.(type) {
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return lineprotocol.Value{}, false
		}
		return lineprotocol.FloatValue(v)
	case int64:
		return lineprotocol.IntValue(v), true
	case uint64:
		return lineprotocol.UintValue(v), true
	case bool:
		return lineprotocol.BoolValue(v), true
	case string:
		return lineprotocol.StringValue(v)
	}
	return lineprotocol.Value{}, false
}

// decodeSpool reads line protocol back into metrics; err reports the first
// line it could not read (the lines before it are kept).
func decodeSpool(data []byte) ([]telegraf.Metric, error) {
	dec := lineprotocol.NewDecoderWithBytes(data)
	var out []telegraf.Metric
	for dec.Next() {
		m, err := decodeMetric(dec)
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
	return out, dec.Err()
}

func decodeMetric(dec *lineprotocol.Decoder) (telegraf.Metric, error) {
	name, err := dec.Measurement()
	if err != nil {
		return nil, err
	}
	tags := map[string]string{}
	for {
		k, v, err := dec.NextTag()
		if err != nil {
			return nil, err
		}
		if k == nil {
			break
		}
		tags[string(k)] = string(v)
	}
	fields := map[string]any{}
	for {
		k, v, err := dec.NextField()
		if err != nil {
			return nil, err
		}
		if k == nil {
			break
		}
		fields[string(k)] = v.Interface()
	}
	tm, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
	if err != nil {
		return nil, err
	}
	if tm.IsZero() {
		return nil, errors.New("line without a timestamp")
	}
	return metric.New(string(name), tags, fields, tm), nil
}
