package lineproto

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

// MaxLineBytes is the longest line the execd output runner decodes; a
// longer one is reported and skipped.
const MaxLineBytes = 4 << 20

var (
	// ErrLineTooLong is a line over the Reader's limit, skipped whole.
	ErrLineTooLong = errors.New("line too long")
	// ErrCutShort is a last line without its line break. Telegraf ends
	// every line, so it is what a writer that died mid-line leaves, and
	// its value may be cut short ("v=12" of "v=123"): it is skipped.
	ErrCutShort = errors.New("input ended before the line break")
)

// LineError is a line the Reader skipped; the lines after it are still
// read.
type LineError struct {
	Line int // 1-based, counting every line (empty and comment lines too)
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// ReadError is an error reading the input; nothing more is read.
type ReadError struct {
	After int // the number of whole lines read before it
	Err   error
}

func (e *ReadError) Error() string { return fmt.Sprintf("after line %d: %v", e.After, e.Err) }
func (e *ReadError) Unwrap() error { return e.Err }

// Reader reads metrics from influx line protocol one line at a time,
// holding at most one line (up to its limit) in memory.
type Reader struct {
	br   *bufio.Reader
	max  int
	line int // lines read so far
	buf  []byte
	err  error // io.EOF or a *ReadError once the input is done
	now  func() time.Time
}

// NewReader returns a reader of r's lines, of up to maxBytes bytes each
// (not counting the line break; MaxLineBytes if maxBytes <= 0).
func NewReader(r io.Reader, maxBytes int) *Reader {
	if maxBytes <= 0 {
		maxBytes = MaxLineBytes
	}
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), max: maxBytes, now: time.Now}
}

// Next returns the next metric, skipping empty and comment lines; a line
// without a timestamp gets the time it is read. A line it skips comes back
// as a *LineError (one that does not decode, ErrLineTooLong, ErrCutShort)
// and Next may be called again. At the end it returns io.EOF; an error
// reading the input comes back as a *ReadError (the line it interrupted,
// if any, is dropped), and again on every later call.
func (r *Reader) Next() (telegraf.Metric, error) {
	for r.err == nil {
		line, err := r.readLine()
		switch {
		case err != nil:
			return nil, &LineError{Line: r.line, Err: err}
		case line == nil:
			// the end: r.err is set
		default:
			m, err := DecodeLine(line, r.now())
			if err != nil {
				return nil, &LineError{Line: r.line, Err: err}
			}
			if m != nil {
				return m, nil
			}
		}
	}
	return nil, r.err
}

// Line is the number of lines read so far.
func (r *Reader) Line() int { return r.line }

// readLine returns the next whole line with its line break, or
// ErrLineTooLong or ErrCutShort for a line it skips; nil, nil at the end
// of the input, with r.err set.
func (r *Reader) readLine() ([]byte, error) {
	r.buf = r.buf[:0]
	tooLong := false
	for {
		chunk, err := r.br.ReadSlice('\n')
		if !tooLong {
			n := len(r.buf) + len(chunk)
			if err == nil {
				n-- // the line break
			}
			if n > r.max {
				tooLong, r.buf = true, r.buf[:0]
			} else {
				r.buf = append(r.buf, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == nil:
			r.line++
			if tooLong {
				return nil, ErrLineTooLong
			}
			return r.buf, nil
		case errors.Is(err, io.EOF):
			r.err = io.EOF
			switch {
			case tooLong:
				r.line++
				return nil, ErrLineTooLong
			case len(r.buf) > 0:
				r.line++
				return nil, ErrCutShort
			}
			return nil, nil
		default:
			r.err = &ReadError{After: r.line, Err: err}
			return nil, nil
		}
	}
}

// DecodeLine decodes one line of influx line protocol (nanosecond
// timestamps; now when it has none), with or without its line break. An
// empty or comment line gives nil, nil. A syntax error gives its column
// ("column 12: ..."), not the decoder's line number: the caller knows the
// line.
func DecodeLine(line []byte, now time.Time) (telegraf.Metric, error) {
	dec := lineprotocol.NewDecoderWithBytes(line)
	if !dec.Next() {
		return nil, nil
	}
	name, err := dec.Measurement()
	if err != nil {
		return nil, decodeErr(err)
	}
	tags := make(map[string]string)
	for {
		k, v, err := dec.NextTag()
		if err != nil {
			return nil, decodeErr(err)
		}
		if k == nil {
			break
		}
		tags[string(k)] = string(v)
	}
	fields := make(map[string]any)
	for {
		k, v, err := dec.NextField()
		if err != nil {
			return nil, decodeErr(err)
		}
		if k == nil {
			break
		}
		fields[string(k)] = v.Interface()
	}
	ts, err := dec.Time(lineprotocol.Nanosecond, now)
	if err != nil {
		return nil, decodeErr(err)
	}
	if dec.Next() {
		return nil, errors.New("more than one metric on the line")
	}
	return metric.New(string(name), tags, fields, ts), nil
}

// decodeErr drops the decoder's own line number (always 1 here) and keeps
// the column.
func decodeErr(err error) error {
	var de *lineprotocol.DecodeError
	if errors.As(err, &de) {
		return fmt.Errorf("column %d: %w", de.Column, de.Err)
	}
	return err
}
