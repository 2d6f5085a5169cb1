package testbed

import (
	"fmt"
	"path/filepath"
	"strings"
)

// config generates haproxy.cfg and fills h's addresses from the ports it
// picks.
func (h *HAProxy) config(opts HAProxyOptions) (string, error) {
	ports, err := freePorts(5)
	if err != nil {
		return "", err
	}
	h.TCPAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	h.StatsURL = fmt.Sprintf("http://127.0.0.1:%d/stats", ports[1])
	h.AuthStatsURL = fmt.Sprintf("http://127.0.0.1:%d/stats", ports[2])

	var b strings.Builder
	fmt.Fprintf(&b, `global
	daemon
	pidfile %s
	stats socket %s mode 600 level admin
	stats socket %s mode 666 level user
	stats socket ipv4@%s level admin
	stats timeout 10s
%s
defaults
	mode http
	timeout connect 1s
	timeout client 10s
	timeout server 10s
	timeout check 1s

listen stats
	bind 127.0.0.1:%d
	stats enable
	stats uri /stats

listen stats_auth
	bind 127.0.0.1:%d
	stats enable
	stats uri /stats
	stats auth admin:secret

`, filepath.Join(h.Dir, "haproxy.pid"), h.AdminSocket, h.UserSocket, h.TCPAddr, globalLines(opts.Global), ports[1], ports[2])

	if opts.Backends == 0 {
		h.FrontendAddr = fmt.Sprintf("127.0.0.1:%d", ports[3])
		h.TCPProxyAddr = fmt.Sprintf("127.0.0.1:%d", ports[4])
		h.scenarioConfig(&b)
	} else {
		h.generatedConfig(&b, opts)
	}
	if opts.Extra != "" {
		b.WriteString(opts.Extra)
		b.WriteString("\n")
	}
	return b.String(), nil
}

// scenarioConfig writes the standard scenario (see StartHAProxy).
func (h *HAProxy) scenarioConfig(b *strings.Builder) {
	dead, err := freePort()
	if err != nil {
		dead = 9 // discard: nobody listens there on a test machine
	}
	web := h.live.httpAddrs[0]
	fmt.Fprintf(b, `frontend %s
	bind %s
	default_backend %s

backend %s
	balance roundrobin
	option httpchk GET /health
	default-server inter 100ms fall 1 rise 1
	server web-1 %s check
	server web-2 127.0.0.1:%d check
	server web:3 %s check disabled
	server web-4 %s check
	server web-5 %s

listen %s
	mode tcp
	bind %s
	server %s %s check inter 100ms fall 1 rise 1

`, ScenarioFrontend, h.FrontendAddr, ScenarioBackend, ScenarioBackend,
		web, dead, web, web, h.live.httpAddrs[1],
		ScenarioTCP, h.TCPProxyAddr, ScenarioTCPSrv, h.live.tcpAddrs[0])
}

// generatedConfig writes Backends listen sections of ServersPerBackend
// servers each. Every proxy binds a unix socket in Dir, so it has a
// FRONTEND row as well (12 rows per proxy at 10 servers) without hunting
// for a thousand free ports.
func (h *HAProxy) generatedConfig(b *strings.Builder, opts HAProxyOptions) {
	check := ""
	if opts.Checks {
		check = " check inter 2s"
	}
	for i := 1; i <= opts.Backends; i++ {
		fmt.Fprintf(b, "listen %s\n\tbind unix@%s\n\tbalance roundrobin\n",
			GeneratedBackend(i), filepath.Join(h.Dir, fmt.Sprintf("f%04d", i)))
		for j := 1; j <= opts.ServersPerBackend; j++ {
			addr := h.live.httpAddrs[(i+j)%len(h.live.httpAddrs)]
			fmt.Fprintf(b, "\tserver %s %s%s\n", GeneratedServer(j), addr, check)
		}
		b.WriteString("\n")
	}
}

// GeneratedBackend is the name of the i-th generated proxy, counting from 1:
// "be_0001".
func GeneratedBackend(i int) string { return fmt.Sprintf("be_%04d", i) }

// GeneratedServer is the name of the j-th server of a generated proxy,
// counting from 1: "srv_01".
func GeneratedServer(j int) string { return fmt.Sprintf("srv_%02d", j) }

// globalLines indents lines for the global section.
func globalLines(lines string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			b.WriteString("\t" + l + "\n")
		}
	}
	return b.String()
}
