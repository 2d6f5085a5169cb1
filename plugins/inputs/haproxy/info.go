package haproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// infoAnswer is what "show info" told about one HAProxy process.
type infoAnswer struct {
	// Fields holds every value that is a decimal integer, under HAProxy's
	// own name, as int64 (the type never changes with the value), in the
	// answer's order, so that the metric's fields always come in it.
	Fields []infoField
	// Version is the Version line, "" if absent.
	Version string
	// ProcessNum is the Process_num line, "" if absent.
	ProcessNum string
}

// infoField is one numeric "Name: value" line of "show info".
type infoField struct {
	Name  string
	Value int64
}

// maxInfoLines bounds the lines read from one "show info" answer (2.6
// prints about 70).
const maxInfoLines = 1000

// parseInfo reads "Name: value" lines up to the empty line that ends the
// answer. Values that are not decimal integers are left out, except
// Version. An answer without its closing empty line is a *TruncatedError;
// the values read before it are still returned.
func parseInfo(lr *lineReader) (infoAnswer, error) {
	ans := infoAnswer{Fields: make([]infoField, 0, 80)}
	for n := 0; ; n++ {
		if n == maxInfoLines {
			return ans, fmt.Errorf("no end of answer within %d lines", maxInfoLines)
		}
		line, complete, err := lr.next()
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return ans, &TruncatedError{Reason: "empty answer"}
			}
			return ans, &TruncatedError{Reason: fmt.Sprintf("no closing empty line after line %d", n)}
		}
		if err != nil {
			return ans, err
		}
		if !complete {
			return ans, &TruncatedError{Reason: fmt.Sprintf("input ended inside line %d", n+1)}
		}
		if len(line) == 0 {
			return ans, nil
		}
		name, value, ok := bytes.Cut(line, []byte(": "))
		if !ok || len(name) == 0 {
			if n == 0 {
				return ans, &notInfoError{first: bytes.Clone(line)}
			}
			continue // a line HAProxy may add in the future: skip it
		}
		ans.add(name, value)
	}
}

func (ans *infoAnswer) add(name, value []byte) {
	switch string(name) {
	case "Version":
		ans.Version = string(value)
	case "Process_num":
		ans.ProcessNum = string(value)
	}
	if v, ok := parseInt(value); ok {
		ans.Fields = append(ans.Fields, infoField{Name: string(name), Value: v})
	}
}

// field returns the numeric value of one show info line.
func (ans *infoAnswer) field(name string) (int64, bool) {
	for _, f := range ans.Fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return 0, false
}

type notInfoError struct{ first []byte }

func (e *notInfoError) Error() string {
	s := e.first
	if len(s) > 80 {
		s = s[:80]
	}
	return fmt.Sprintf("answer is not show info's \"Name: value\" lines, it starts with %q", s)
}

// parseUint parses a decimal uint64 without allocating.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// parseInt parses a decimal int64, with an optional sign, without allocating.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	u, ok := parseUint(b)
	if !ok {
		return 0, false
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true //nolint:gosec // range checked above
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}
