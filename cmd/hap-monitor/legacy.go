package main

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// legacy holds the original HAP-Monitor's command line:
//
//	hap-monitor --backend graphite.host:2003::my.system.stats.haproxy --type G \
//	    --sockets /var/run/a.sock /var/run/b.sock [--verbose] [--protocol udp|tcp]
type legacy struct {
	backend  string   // HOST[:PORT][::SCOPE]
	kind     string   // --type: G (Graphite) or S (statsd, the default)
	sockets  []string // --sockets, one or more
	protocol string   // --protocol: udp (default, as hap-monitor-cron.py) or tcp
	verbose  bool
	used     []string // the original's flags seen, for messages
}

// originalFields is the original's field set, under its own names.
var originalFields = []string{
	"scur", "qcur", "chkfail", "status.*",
	"hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx",
	"req_rate", "rate", "qtime", "ctime", "rtime", "ttime",
	"Idle_pct",
}

// splitLegacy takes the original's flags out of args (in "--flag value",
// "--flag=value" and single-dash forms; --sockets takes every following
// argument up to the next flag, as argparse's nargs='+') and returns the
// rest for the flag package.
func splitLegacy(args []string) (*legacy, []string, error) {
	l := &legacy{}
	var rest []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := flagName(arg)
		switch name {
		case "backend", "type", "protocol":
			if !hasValue {
				if i+1 >= len(args) || isFlag(args[i+1]) {
					return nil, nil, fmt.Errorf("--%s needs a value", name)
				}
				i++
				value = args[i]
			}
			switch name {
			case "backend":
				l.backend = value
			case "type":
				l.kind = value
			case "protocol":
				l.protocol = value
			}
		case "sockets":
			if hasValue {
				l.sockets = append(l.sockets, value)
			}
			for i+1 < len(args) && !isFlag(args[i+1]) {
				i++
				l.sockets = append(l.sockets, args[i])
			}
			if len(l.sockets) == 0 {
				return nil, nil, fmt.Errorf("--sockets needs at least one socket path")
			}
		case "verbose":
			if hasValue {
				return nil, nil, fmt.Errorf("--verbose takes no value")
			}
			l.verbose = true
		default:
			rest = append(rest, arg)
			continue
		}
		l.used = append(l.used, "--"+name)
	}
	return l, rest, nil
}

// flagName returns the name of a "-name", "--name" or "--name=value" argument.
func flagName(arg string) (name, value string, hasValue bool) {
	if !isFlag(arg) {
		return "", "", false
	}
	name = strings.TrimLeft(arg, "-")
	if i := strings.IndexByte(name, '='); i >= 0 {
		return name[:i], name[i+1:], true
	}
	return name, "", false
}

func isFlag(arg string) bool { return len(arg) > 1 && arg[0] == '-' }

// active reports whether any of the original's flags was given.
func (l *legacy) active() bool { return len(l.used) > 0 }

// configText validates the original's flags and returns the configuration
// they stand for: one [[inputs.haproxy]] over the sockets with the
// original's fields and names, one [[outputs.graphite_statsd]] to the
// backend with the scope as prefix. Errors name the flag at fault.
func (l *legacy) configText() (string, error) {
	if len(l.sockets) == 0 {
		return "", fmt.Errorf("--sockets: at least one socket is required (e.g. --sockets /var/run/haproxy.sock)")
	}
	if l.backend == "" {
		return "", fmt.Errorf("--backend: required, as HOST[:PORT][::SCOPE] (e.g. --backend graphite.host:2003::my.system.stats.haproxy)")
	}
	format, defaultPort := "statsd", "8125" // the original's default type
	switch strings.ToLower(l.kind) {
	case "g":
		format, defaultPort = "graphite", "2003"
	case "s", "":
	default:
		return "", fmt.Errorf("--type %q: want G (Graphite) or S (statsd)", l.kind)
	}
	addr, scope, err := parseBackend(l.backend, defaultPort)
	if err != nil {
		return "", fmt.Errorf("--backend %q: %w", l.backend, err)
	}
	protocol := strings.ToLower(l.protocol)
	switch protocol {
	case "":
		protocol = "udp" // as the original's hap-monitor-cron.py
	case "udp", "tcp":
	default:
		return "", fmt.Errorf("--protocol %q: want udp or tcp", l.protocol)
	}
	doc := map[string]any{
		"inputs": map[string]any{"haproxy": []map[string]any{{
			"servers":          l.sockets,
			"keep_field_names": true,
			"include_fields":   originalFields,
			// The original read show info and show stat only: none of
			// the optional commands (stick tables, certificates).
			"optional_measurements": []string{},
		}}},
		"outputs": map[string]any{"graphite_statsd": []map[string]any{{
			"servers":   []string{addr},
			"format":    format,
			"transport": protocol,
			"prefix":    scope,
		}}},
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(doc); err != nil {
		return "", fmt.Errorf("building the configuration: %w", err)
	}
	return b.String(), nil
}

// parseBackend splits the original's HOST[:PORT][::SCOPE] into a host:port
// address (PORT defaulting to defaultPort) and the scope, which may be
// empty. An IPv6 host is written in brackets: [::1]:2003::scope.
func parseBackend(backend, defaultPort string) (addr, scope string, err error) {
	hostPort := backend
	from := 0
	if strings.HasPrefix(backend, "[") {
		from = strings.IndexByte(backend, ']') + 1
		if from == 0 {
			return "", "", fmt.Errorf("no ']' after the IPv6 address")
		}
	}
	if i := strings.Index(backend[from:], "::"); i >= 0 {
		hostPort, scope = backend[:from+i], backend[from+i+2:]
	}
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		// No port: the transport's usual one.
		host, port = strings.TrimSuffix(strings.TrimPrefix(hostPort, "["), "]"), defaultPort
		if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && from == 0) {
			return "", "", fmt.Errorf("%q is not HOST[:PORT]", hostPort)
		}
	}
	if host == "" {
		return "", "", fmt.Errorf("no host before the port (e.g. graphite.host:2003::my.system.stats.haproxy)")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("port %q is not a number in [1, 65535]", port)
	}
	if strings.ContainsAny(scope, " \t\n") {
		return "", "", fmt.Errorf("scope %q has white space", scope)
	}
	if strings.Contains(scope, ":") {
		return "", "", fmt.Errorf("scope %q has ':' (an IPv6 host goes in brackets: [fe80::1]:2003::scope)", scope)
	}
	return net.JoinHostPort(host, port), strings.Trim(scope, "."), nil
}

// blame names the flag behind an error in the configuration built from it.
func (l *legacy) blame(err error) error {
	switch msg := err.Error(); {
	case strings.Contains(msg, "inputs.haproxy"):
		return fmt.Errorf("--sockets: %w", err)
	case strings.Contains(msg, "outputs.graphite_statsd"):
		return fmt.Errorf("--backend/--type/--protocol: %w", err)
	}
	return err
}
