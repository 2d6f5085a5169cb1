package haproxy

import (
	"bytes"
	"fmt"
)

// "show resolvers" (level user, 1.8 and later) says, per resolvers
// section and nameserver, how its DNS queries went: what service
// discovery (server-template with resolvers) rests on.
//
//	Resolvers section dns
//	 nameserver ns1:
//	  sent:        7
//	  snd_error:   0
//	  valid:       3
//	  ...
//
// Each nameserver gives one haproxy_resolver metric, tags resolvers and
// nameserver, every counter an int64 field under HAProxy's name (sent,
// snd_error, valid, update, cname, cname_error, any_err, nx, timeout,
// refused, other, invalid, too_big, truncated, outdated on 2.2 to 3.4),
// once it has counted something: HAProxy 2.6 and later make a section
// "default" from /etc/resolv.conf that nothing may use, which would
// otherwise add its fifteen zeros to every gather of every socket.

// maxResolverLines bounds the lines of one "show resolvers" answer.
const maxResolverLines = 100000

// readResolvers reads "show resolvers" and emits a haproxy_resolver
// metric per nameserver. A line it cannot read is reported and left out.
func (g *serverGather) readResolvers(lr *lineReader, processNum string) error {
	bad := badRows{noun: "bad lines"}
	var section string
	// cur is the nameserver being read, while reading; asked, whether it
	// counted anything.
	var cur fieldMetric
	reading, asked := false, false
	flush := func() {
		if reading && asked {
			cur.emit()
		}
		reading, asked = false, false
	}
	err := readAnswerLines(lr, maxResolverLines, func(n int, line []byte) {
		switch {
		case n == 1 && bytes.Equal(line, []byte("No resolvers found")):
			// 2.2 without a resolvers section (later releases make one
			// from /etc/resolv.conf, "default").
		case bytes.HasPrefix(line, []byte("Resolvers section ")):
			flush()
			section = string(bytes.TrimPrefix(line, []byte("Resolvers section ")))
		case bytes.HasPrefix(line, []byte(" nameserver ")) && bytes.HasSuffix(line, []byte(":")):
			flush()
			if section == "" {
				bad.add(fmt.Errorf("line %d left out: a nameserver before any resolvers section: %q", n, clip(line, 200)))
				return
			}
			name := string(bytes.TrimSuffix(bytes.TrimPrefix(line, []byte(" nameserver ")), []byte(":")))
			cur, reading = g.newMetric("haproxy_resolver", map[string]string{"resolvers": section, "nameserver": name}, processNum), true
		case reading && bytes.HasPrefix(line, []byte("  ")):
			key, value, ok := bytes.Cut(bytes.TrimSpace(line), []byte(":"))
			v, isInt := parseInt(bytes.TrimSpace(value))
			if !ok || !isInt {
				bad.add(fmt.Errorf("line %d left out: not a counter: %q", n, clip(line, 200)))
				return
			}
			asked = asked || v != 0
			cur.add(string(key), v)
		default:
			bad.add(fmt.Errorf("line %d left out: not show resolvers' layout: %q", n, clip(line, 200)))
		}
	})
	flush()
	if err != nil {
		bad.add(err)
	}
	return bad.err()
}
