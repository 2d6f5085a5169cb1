package haproxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"unsafe"
)

// MaxLineBytes caps the length of one line of an answer (a CSV record
// with its quoted newlines, or a "Name: value" line). HAProxy's longest
// rows are a few KiB; a longer line is garbage and ends the read, so
// memory stays bounded whatever a socket sends.
const MaxLineBytes = 64 << 10

// lineReader hands out the lines of an answer as they arrive, without
// copying them. A line is valid until the next call.
type lineReader struct {
	br    *bufio.Reader
	lines int // lines returned so far

	// last is what next returned last, and again makes next return it
	// once more (see unread).
	last  lineRead
	again bool
}

// lineRead is one result of next.
type lineRead struct {
	line     []byte
	complete bool
	err      error
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, MaxLineBytes)}
}

// errLineTooLong reports a line over MaxLineBytes.
var errLineTooLong = fmt.Errorf("line longer than %d bytes (not a HAProxy answer?)", MaxLineBytes)

// next returns the next line without its line ending. complete is false
// when the input ended before the newline: line then holds what came. At
// the end of input with nothing pending it returns io.EOF.
func (lr *lineReader) next() (line []byte, complete bool, err error) {
	if lr.again {
		lr.again = false
		if lr.last.line != nil {
			lr.lines++
		}
		return lr.last.line, lr.last.complete, lr.last.err
	}
	line, complete, err = lr.read()
	lr.last = lineRead{line, complete, err}
	return line, complete, err
}

// unread makes the next call to next return what the last one returned,
// so that a caller that looked at the first line of an answer can hand
// the answer on whole. The line stays valid: nothing is read meanwhile.
func (lr *lineReader) unread() {
	lr.again = true
	if lr.last.line != nil {
		lr.lines--
	}
}

func (lr *lineReader) read() (line []byte, complete bool, err error) {
	b, err := lr.br.ReadSlice('\n')
	switch {
	case err == nil:
		lr.lines++
		b = b[:len(b)-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
		return b, true, nil
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, false, fmt.Errorf("line %d: %w", lr.lines+1, errLineTooLong)
	case errors.Is(err, io.EOF) && len(b) > 0:
		lr.lines++
		return b, false, nil
	default:
		return nil, false, err
	}
}

// TruncatedError reports an answer that stopped early: a row with fewer or
// more cells than the header, or no closing empty line. The complete rows
// before it have been emitted.
type TruncatedError struct {
	Row    int    // 1-based data row at fault; 0 for the header
	Reason string // what was wrong
	// Proxy and Server are the row's pxname and svname cells, when they
	// were read whole.
	Proxy, Server string

	// midAnswer is set for a complete line with the wrong number of cells:
	// the rows after it can still be read.
	midAnswer bool
}

func (e *TruncatedError) Error() string {
	names := ""
	if e.Proxy != "" || e.Server != "" {
		names = fmt.Sprintf(" (proxy %q, server %q)", e.Proxy, e.Server)
	}
	if e.midAnswer {
		return fmt.Sprintf("row %d%s left out: %s", e.Row, names, e.Reason)
	}
	if e.Row == 0 {
		return "answer truncated: " + e.Reason
	}
	return fmt.Sprintf("answer truncated at row %d%s: %s", e.Row, names, e.Reason)
}

// errNotCSV reports an answer whose first line is not a "# pxname,..." header.
type notCSVError struct{ first []byte }

func (e *notCSVError) Error() string {
	const shown = 80
	s := e.first
	if len(s) > shown {
		s = s[:shown]
	}
	return fmt.Sprintf("answer is not show stat CSV, it starts with %q", s)
}

// statReader parses a "show stat" CSV answer while it arrives: the header,
// then one row at a time, cells mapped by the header's column names.
// Cells may be double-quoted with "" escapes, and a quoted cell may span
// lines. Cells are sub-slices of the reader's buffers, valid until the
// next call to next.
type statReader struct {
	lr *lineReader
	// endOnEOF accepts the end of input after a complete row as the end of
	// the answer (the HTTP stats page has no closing empty line).
	endOnEOF bool

	header       []string
	pxIdx, svIdx int // columns of pxname and svname, -1 if absent
	rows         int // data rows returned so far, complete or not
	cells        [][]byte
	rec          []byte // a record joined from several lines
	unq          []byte // unquoted cell bytes
}

func newStatReader(lr *lineReader, endOnEOF bool) *statReader {
	return &statReader{lr: lr, endOnEOF: endOnEOF, pxIdx: -1, svIdx: -1}
}

// readHeader reads the "# pxname,svname,..." line. The trailing comma
// HAProxy prints makes a last column with an empty name, matched by the
// rows' own trailing comma.
func (s *statReader) readHeader() error {
	line, complete, err := s.lr.next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return &TruncatedError{Reason: "empty answer, no CSV header"}
		}
		return err
	}
	if !complete && bytes.HasPrefix([]byte("# "), line[:min(len(line), 2)]) {
		return &TruncatedError{Reason: "input ended inside the CSV header"}
	}
	if !bytes.HasPrefix(line, []byte("# ")) || len(line) <= 2 {
		return &notCSVError{first: bytes.Clone(line)}
	}
	if !complete {
		return &TruncatedError{Reason: "input ended inside the CSV header"}
	}
	cells, err := s.split(line[2:])
	if err != nil {
		return err
	}
	s.header = make([]string, len(cells))
	for i, c := range cells {
		s.header[i] = string(c)
		switch s.header[i] {
		case "pxname":
			s.pxIdx = i
		case "svname":
			s.svIdx = i
		}
	}
	return nil
}

// skipAnswer reads and drops lines up to the closing empty line of an
// answer that is not CSV (an error message such as "No such proxy."),
// at most maxLines of them, so that the next command's answer can be read.
func (s *statReader) skipAnswer(maxLines int) error {
	return skipToEnd(s.lr, maxLines, false)
}

// skipToEnd reads and drops lines up to an answer's closing empty line,
// at most maxLines of them; with endOK, the end of the input closes it
// too (the answer of a line's last command).
func skipToEnd(lr *lineReader, maxLines int, endOK bool) error {
	for i := 0; i < maxLines; i++ {
		line, complete, err := lr.next()
		if endOK && errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !complete {
			return io.ErrUnexpectedEOF
		}
		if len(line) == 0 {
			return nil
		}
	}
	return fmt.Errorf("no end of answer within %d lines", maxLines)
}

// next returns the cells of the next row. At the end of the answer it
// returns io.EOF. A row whose cell count differs from the header's is
// returned with a *TruncatedError and its cells; the caller may go on
// reading (a ragged row in the middle) or stop (input ended).
func (s *statReader) next() ([][]byte, error) {
	line, complete, err := s.lr.next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			if s.endOnEOF {
				return nil, io.EOF
			}
			return nil, &TruncatedError{Row: s.rows, Reason: "no closing empty line after it"}
		}
		return nil, err
	}
	if complete && len(line) == 0 {
		return nil, io.EOF
	}
	s.rows++
	if bytes.IndexByte(line, '"') >= 0 {
		if line, complete, err = s.joinQuoted(line, complete); err != nil {
			return nil, err
		}
	}
	cells, err := s.split(line)
	if err != nil {
		return nil, err
	}
	if !complete {
		// The last cell may be cut: only those before it are whole.
		te := &TruncatedError{Row: s.rows, Reason: fmt.Sprintf("input ended mid-row (%d of %d cells)", len(cells), len(s.header))}
		s.nameRow(te, cells[:len(cells)-1])
		return cells, te
	}
	if len(cells) != len(s.header) {
		te := &TruncatedError{Row: s.rows, Reason: fmt.Sprintf("%d cells, the header has %d", len(cells), len(s.header)), midAnswer: true}
		s.nameRow(te, cells)
		return cells, te
	}
	return cells, nil
}

// nameRow fills the proxy and server of a row at fault from its whole
// cells, so that the message says which server it was about.
func (s *statReader) nameRow(te *TruncatedError, whole [][]byte) {
	if s.pxIdx < 0 || s.svIdx < 0 || s.pxIdx >= len(whole) || s.svIdx >= len(whole) {
		return
	}
	te.Proxy, te.Server = string(whole[s.pxIdx]), string(whole[s.svIdx])
}

// joinQuoted returns the whole record starting with line: while a quoted
// cell is open (an odd count of quotes), the next line belongs to it.
func (s *statReader) joinQuoted(line []byte, complete bool) ([]byte, bool, error) {
	if bytes.Count(line, []byte{'"'})%2 == 0 || !complete {
		return line, complete, nil
	}
	s.rec = append(s.rec[:0], line...)
	for {
		more, c, err := s.lr.next()
		if errors.Is(err, io.EOF) {
			return s.rec, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		if len(s.rec)+1+len(more) > MaxLineBytes {
			return nil, false, fmt.Errorf("row %d: %w", s.rows, errLineTooLong)
		}
		s.rec = append(s.rec, '\n')
		s.rec = append(s.rec, more...)
		if !c {
			return s.rec, false, nil
		}
		if bytes.Count(more, []byte{'"'})%2 == 1 {
			return s.rec, true, nil
		}
	}
}

// commaBytes returns the high bit of each byte of w (little-endian) that
// is a comma, and no other bit.
func commaBytes(w uint64) uint64 {
	const (
		ones   = 0x0101010101010101
		low7   = 0x7f7f7f7f7f7f7f7f
		commas = ',' * ones
	)
	x := w ^ commas // a comma is now a zero byte
	// A byte's high bit in t is set unless the byte is zero: the sum
	// never carries from one byte into the next.
	t := ((x & low7) + low7) | x
	return ^t & (0x80 * ones)
}

// recordOf returns the cells of a row as split cut them, joined by
// commas, without copying, when they were cut from one slice at its
// commas (a row without quotes): that slice. Otherwise it returns nil.
// split's unquoted cells are the bytes of the record, in order; a quoted
// one is elsewhere and shorter than it was, so the last cell with bytes
// is either elsewhere or further into the record than the cells before
// it add up to: checking that one is enough.
func recordOf(cells [][]byte) []byte {
	if len(cells) == 0 {
		return nil
	}
	n := len(cells) - 1
	for _, c := range cells {
		n += len(c)
	}
	if cap(cells[0]) < n {
		return nil
	}
	rec := cells[0][:n]
	end := n
	for i := len(cells) - 1; i >= 0; i-- {
		c := cells[i]
		if len(c) > 0 {
			if unsafe.SliceData(c) != unsafe.SliceData(rec[end-len(c):]) {
				return nil
			}
			break
		}
		end--
	}
	return rec
}

// split cuts a record into cells on commas, unquoting quoted cells.
func (s *statReader) split(rec []byte) ([][]byte, error) {
	cells := s.cells[:0]
	if bytes.IndexByte(rec, '"') < 0 {
		// Cells are short (most are a digit or two): one pass over the
		// bytes, eight at a time, costs less than a search call per cell.
		start, i := 0, 0
		for ; i+8 <= len(rec); i += 8 {
			for m := commaBytes(binary.LittleEndian.Uint64(rec[i:])); m != 0; m &= m - 1 {
				j := i + bits.TrailingZeros64(m)>>3
				cells = append(cells, rec[start:j])
				start = j + 1
			}
		}
		for ; i < len(rec); i++ {
			if rec[i] == ',' {
				cells = append(cells, rec[start:i])
				start = i + 1
			}
		}
		cells = append(cells, rec[start:])
		s.cells = cells
		return cells, nil
	}
	// Unquoted cells are never longer than the record: with that capacity
	// the appends below never move cells already cut.
	if cap(s.unq) < len(rec) {
		s.unq = make([]byte, 0, len(rec))
	}
	unq := s.unq[:0]
	for {
		if len(rec) > 0 && rec[0] == '"' {
			start := len(unq)
			i := 1
			for {
				j := bytes.IndexByte(rec[i:], '"')
				if j < 0 { // unterminated: the rest is the cell
					unq = append(unq, rec[i:]...)
					rec = rec[len(rec):]
					break
				}
				unq = append(unq, rec[i:i+j]...)
				i += j + 1
				if i < len(rec) && rec[i] == '"' { // "" is a quote
					unq = append(unq, '"')
					i++
					continue
				}
				rec = rec[i:]
				break
			}
			cells = append(cells, unq[start:len(unq):len(unq)])
			// Anything between the closing quote and the comma is kept
			// out: HAProxy never prints it.
			i = bytes.IndexByte(rec, ',')
			if i < 0 {
				break
			}
			rec = rec[i+1:]
			continue
		}
		i := bytes.IndexByte(rec, ',')
		if i < 0 {
			cells = append(cells, rec)
			break
		}
		cells = append(cells, rec[:i])
		rec = rec[i+1:]
	}
	s.cells, s.unq = cells, unq
	return cells, nil
}

// readAnswerLines calls line for each line of an answer up to the empty
// line that ends it, with the line's number from 1; line's slice is
// valid until it returns. An answer that stops before its empty line
// gives a *TruncatedError; one of more than maxLines lines an error.
func readAnswerLines(lr *lineReader, maxLines int, line func(n int, text []byte)) error {
	for n := 1; n <= maxLines; n++ {
		text, complete, err := lr.next()
		switch {
		case errors.Is(err, io.EOF) && n == 1:
			return &TruncatedError{Reason: "empty answer"}
		case errors.Is(err, io.EOF):
			return &TruncatedError{Reason: fmt.Sprintf("no closing empty line after line %d", n-1)}
		case err != nil:
			return err
		case !complete:
			return &TruncatedError{Reason: fmt.Sprintf("input ended inside line %d", n)}
		case len(text) == 0:
			return nil
		}
		line(n, text)
	}
	return fmt.Errorf("no end of answer within %d lines", maxLines)
}
