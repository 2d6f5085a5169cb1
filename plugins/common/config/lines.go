package config

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/BurntSushi/toml"
)

// The TOML decoder reports lines for syntax errors but not for keys nobody
// decoded, nor for the sections of an array of tables. These helpers find
// them with a light scan of the text, good for messages only.

// headerLines maps a table name ("inputs.haproxy") to the lines of its
// headers, in order.
type headerLines map[string][]int

func (h headerLines) line(table string, index int) int {
	if lines := h[table]; index < len(lines) {
		return lines[index]
	}
	return 0
}

func sectionLines(data []byte) headerLines {
	h := headerLines{}
	scan(data, func(n int, table string, isHeader bool, _ string) {
		if isHeader {
			h[table] = append(h[table], n)
		}
	})
	return h
}

// keyLine returns the first line that sets key's last element inside the
// table its other elements name, or where that table starts; 0 if unknown.
func keyLine(data []byte, key toml.Key) int {
	table := strings.Join(key[:len(key)-1], ".")
	last := key[len(key)-1]
	found, tableLine := 0, 0
	scan(data, func(n int, t string, isHeader bool, k string) {
		if found != 0 {
			return
		}
		switch {
		case isHeader && t == key.String():
			found = n // the key is a table of its own
		case isHeader && t == table && tableLine == 0:
			tableLine = n
		case !isHeader && (t == table && k == last || t == "" && k == key.String()):
			found = n
		}
	})
	if found == 0 {
		return tableLine
	}
	return found
}

// scan calls fn for every header line (with its table name) and every
// "key = value" line (with the table it belongs to and its key).
func scan(data []byte, fn func(line int, table string, isHeader bool, key string)) {
	s := bufio.NewScanner(bytes.NewReader(data))
	s.Buffer(make([]byte, 0, 64*1024), len(data)+1)
	table := ""
	for n := 1; s.Scan(); n++ {
		text := strings.TrimSpace(s.Text())
		switch {
		case text == "" || text[0] == '#':
		case text[0] == '[':
			name := strings.Trim(text, "[] \t")
			if i := strings.IndexAny(name, "]#"); i >= 0 {
				name = strings.TrimSpace(name[:i])
			}
			table = unquote(name)
			fn(n, table, true, "")
		default:
			if i := strings.IndexByte(text, '='); i > 0 {
				fn(n, table, false, unquote(strings.TrimSpace(text[:i])))
			}
		}
	}
}

func unquote(s string) string {
	return strings.NewReplacer(`"`, "", `'`, "", " ", "", "\t", "").Replace(s)
}

// keyLineFrom returns the first line after line from that sets key directly
// in table, stopping at the next header; 0 if there is none.
func keyLineFrom(data []byte, table string, from int, key string) int {
	found, done := 0, false
	scan(data, func(n int, t string, isHeader bool, k string) {
		if done || n <= from {
			return
		}
		switch {
		case isHeader:
			done = true
		case t == table && k == key:
			found, done = n, true
		}
	})
	return found
}
