package haproxy

import (
	"bytes"
	"errors"
	"strings"
	"sync"
)

// "show table" is the one command of the line that an HAProxy may not
// have (before 1.5). An HAProxy answers a command it does not have with
// its usage text, which starts with "Unknown command" (2.2: "Unknown
// command. Please enter one of the following commands only :" and 80
// lines; 2.6 and later: "Unknown command: 'show', but maybe one of the
// following ones is a better match:" and a few), ends it with an empty
// line, and answers the line's other commands. Such an answer is no
// error: the socket's other answers are kept, and "show table" is not
// sent to that socket again while the same HAProxy process answers it.

// unknownCommandPrefix starts HAProxy's answer to a command it does not
// have.
var unknownCommandPrefix = []byte("Unknown command")

// maxUsageLines bounds the lines of a usage text skipped.
const maxUsageLines = 1000

// errUnknownCommand is what readTables returns for a usage text.
var errUnknownCommand = errors.New("HAProxy answered with its usage text (Unknown command)")

// skipUsage reads the rest of a usage text whose first line was read, up
// to its closing empty line or the end of the input.
func skipUsage(lr *lineReader) error { return skipToEnd(lr, maxUsageLines, true) }

func isUsage(line []byte) bool { return bytes.HasPrefix(line, unknownCommandPrefix) }

// tablelessSockets remembers the sockets whose HAProxy does not have "show
// table": socket name -> the pid of the process that said so.
type tablelessSockets struct {
	mu      sync.Mutex
	sockets map[string]int64
}

// commandsFor returns the line to send to the socket named name, and
// whether it leaves "show table" out.
func (h *HAProxy) commandsFor(name string) (string, bool) {
	h.tableless.mu.Lock()
	_, skip := h.tableless.sockets[name]
	h.tableless.mu.Unlock()
	if skip {
		return strings.TrimSuffix(h.commands, ";show table\n") + "\n", true
	}
	return h.commands, false
}

// tablesUnknown records that the process pid behind the socket named
// name answered "show table" with its usage text.
func (h *HAProxy) tablesUnknown(name string, pid int64) {
	h.tableless.mu.Lock()
	h.tableless.sockets[name] = pid
	h.tableless.mu.Unlock()
	h.Log.Debugf("%s: HAProxy (pid %d) does not have show table (it answered with its usage text): no haproxy_table metrics, and show table is not sent to it again", name, pid)
}

// processSeen tells that the process pid answered on the socket named
// name: if it is not the one that lacked "show table" (HAProxy was
// restarted, perhaps upgraded), the next gather asks it again.
func (h *HAProxy) processSeen(name string, pid int64) {
	h.tableless.mu.Lock()
	was, ok := h.tableless.sockets[name]
	if ok && pid != 0 && pid != was {
		delete(h.tableless.sockets, name)
	}
	h.tableless.mu.Unlock()
	if ok && pid != 0 && pid != was {
		h.Log.Debugf("%s: HAProxy restarted (pid %d, was %d): show table is asked again", name, pid, was)
	}
}
