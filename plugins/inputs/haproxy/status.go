package haproxy

import "strings"

// HAProxy prints a row's state in its status column as text: "UP",
// "DOWN 1/2", "MAINT (via app/web-1)", "no check", "OPEN"... Graphite and
// statsd drop strings, so each row also gets one 0/1 field per state of a
// fixed vocabulary, "status.<STATE>", exactly one of them 1.

// Names of the states. StateNoCheck stands for "no check", StateOther for
// anything outside the vocabulary of the row's type.
const (
	StateUp      = "UP"
	StateDown    = "DOWN"
	StateNoLB    = "NOLB"
	StateDrain   = "DRAIN"
	StateMaint   = "MAINT"
	StateNoCheck = "NOCHECK"
	StateOpen    = "OPEN"
	StateFull    = "FULL"
	StatePaused  = "PAUSED"
	StateStop    = "STOP"
	StateWaiting = "WAITING"
	StateOther   = "OTHER"
)

// ServerStates is the vocabulary of servers and backends (backends are
// only ever UP or DOWN, but share the servers' fields so that a query over
// both finds the same names).
var ServerStates = []string{StateUp, StateDown, StateNoLB, StateDrain, StateMaint, StateNoCheck, StateOther}

// FrontendStates is the vocabulary of frontends and listeners.
var FrontendStates = []string{StateOpen, StateFull, StatePaused, StateStop, StateWaiting, StateOther}

// statusFieldPrefix is prepended to a state's name to form its field name.
const statusFieldPrefix = "status."

// serverCountPrefix is prepended to a state's name to form the field of a
// backend's count of servers in that state.
const serverCountPrefix = "servers."

// vocabulary returns the states of a row type (HAProxy's type column:
// 0 frontend, 1 backend, 2 server, 3 listener).
func vocabulary(rowType int) []string {
	if rowType == typeFrontend || rowType == typeListener {
		return FrontendStates
	}
	return ServerStates
}

// normalizeStatus maps a status cell to a state of vocab, on its first
// word: "UP 1/3" is UP, "MAINT (via a/b)" and "MAINT(via)" are MAINT,
// "DOWN (agent)" is DOWN, "no check" is NOCHECK. known is false when the
// cell is outside vocab; the state is then StateOther.
func normalizeStatus(status []byte, vocab []string) (state string, known bool) {
	if hasPrefixFold(status, "no check") {
		if containsState(vocab, StateNoCheck) {
			return StateNoCheck, true
		}
		return StateOther, false
	}
	word := status
	for i, c := range status {
		if c == ' ' || c == '(' {
			word = status[:i]
			break
		}
	}
	for _, s := range vocab {
		if s != StateOther && s != StateNoCheck && string(word) == s {
			return s, true
		}
	}
	return StateOther, false
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}

func containsState(vocab []string, state string) bool {
	for _, s := range vocab {
		if s == state {
			return true
		}
	}
	return false
}

// stateIndex is the position of state in vocab; StateOther's when absent.
func stateIndex(vocab []string, state string) int {
	other := len(vocab) - 1
	for i, s := range vocab {
		if s == state {
			return i
		}
		if s == StateOther {
			other = i
		}
	}
	return other
}
