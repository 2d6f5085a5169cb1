package haproxy

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/influxdata/telegraf/metric"
)

// "show table" without arguments prints one line per stick table, then
// the empty line that ends every answer (the line alone when there is no
// table), at every level, "user" included:
//
//	# table: tbl_str, type: string, size:2048, used:1
//	# table: tbl_ip, type: ip, size:1048576, used:2
//
// The name is the table's (its proxy's, for a table declared in a proxy),
// the type its key type (ip, ipv6, integer, string, binary), size the
// entries it may hold and used those it holds.

// tableLinePrefix starts every line of the answer.
const tableLinePrefix = "# table: "

// tableHead is one line of "show table".
type tableHead struct {
	name, typ  string
	size, used int64
}

// parseTableHead reads one line of "show table". After the name come
// "key: value" items, in any order; type, size and used are required,
// others (a later HAProxy's) are skipped.
func parseTableHead(line []byte) (tableHead, error) {
	var th tableHead
	rest, ok := bytes.CutPrefix(line, []byte(tableLinePrefix))
	if !ok {
		return th, fmt.Errorf("not a %q line", tableLinePrefix)
	}
	name, rest, _ := bytes.Cut(rest, []byte{','})
	if name = bytes.TrimSpace(name); len(name) == 0 {
		return th, errors.New("no table name")
	}
	th.name = string(name)
	var hasType, hasSize, hasUsed bool
	for len(rest) > 0 {
		var item []byte
		item, rest, _ = bytes.Cut(rest, []byte{','})
		key, value, ok := bytes.Cut(item, []byte{':'})
		if !ok {
			return th, fmt.Errorf("item %q is not \"key:value\"", bytes.TrimSpace(item))
		}
		key, value = bytes.TrimSpace(key), bytes.TrimSpace(value)
		switch string(key) {
		case "type":
			if len(value) == 0 {
				return th, errors.New("empty type")
			}
			th.typ, hasType = string(value), true
		case "size":
			if th.size, ok = parseInt(value); !ok || th.size < 0 {
				return th, fmt.Errorf("size %q is not a count", value)
			}
			hasSize = true
		case "used":
			if th.used, ok = parseInt(value); !ok || th.used < 0 {
				return th, fmt.Errorf("used %q is not a count", value)
			}
			hasUsed = true
		}
	}
	switch {
	case !hasType:
		return th, errors.New("no type")
	case !hasSize:
		return th, errors.New("no size")
	case !hasUsed:
		return th, errors.New("no used")
	}
	return th, nil
}

// readTables reads the answer of "show table" and emits one haproxy_table
// metric per table. A line it cannot read is reported and left out; the
// lines after it are still read. An answer that stops before its empty
// line is a *TruncatedError; the tables before it are emitted.
func (g *serverGather) readTables(lr *lineReader, processNum string) error {
	bad := badRows{noun: "bad lines"}
	err := readAnswerLines(lr, maxTableLines, func(n int, line []byte) {
		th, err := parseTableHead(line)
		if err != nil {
			bad.add(fmt.Errorf("line %d left out: %w: %q", n, err, clip(line, 200)))
			return
		}
		g.addTable(th, processNum)
	})
	if err != nil {
		bad.add(err)
	}
	return bad.err()
}

// maxTableLines bounds the lines of one "show table" answer: a stick
// table a line.
const maxTableLines = 100000

// addTable emits the haproxy_table metric of one table, unless proxies
// are named and it is none of theirs.
func (g *serverGather) addTable(th tableHead, processNum string) {
	if g.h.proxies != nil && !g.h.proxies[th.name] {
		return
	}
	tags := map[string]string{"server": g.ep.tag, "table": th.name, "type": th.typ}
	if processNum != "" {
		tags["process_num"] = processNum
	}
	m := metric.New("haproxy_table", tags, nil, g.ts)
	if g.h.fields == nil || g.h.fields.Match("size") {
		m.AddField("size", th.size)
	}
	if g.h.fields == nil || g.h.fields.Match("used") {
		m.AddField("used", th.used)
	}
	if len(m.FieldList()) == 0 {
		return
	}
	g.acc.AddMetric(m)
}

// clip shortens b for a message.
func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
