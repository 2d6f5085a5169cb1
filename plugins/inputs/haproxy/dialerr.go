package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
)

// explainDial adds to a failed connection what to check, for the causes
// a configuration error gives: no socket file, a socket the user may not
// write to, nobody listening.
func explainDial(ctx context.Context, ep endpoint, err error) error {
	if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return describe(ctx, err)
	}
	var hint string
	switch {
	case ep.master && ep.kind == kindUnix && errors.Is(err, fs.ErrNotExist):
		hint = fmt.Sprintf("is HAProxy running in master-worker mode with its master CLI on %s (haproxy -W -S %s)?", ep.addr, ep.addr)
	case ep.master && errors.Is(err, syscall.ECONNREFUSED):
		hint = "no master CLI listens there: HAProxy stopped, or was started without -S on this address"
	case ep.kind == kindUnix && errors.Is(err, fs.ErrNotExist):
		hint = fmt.Sprintf("is HAProxy running, and does a \"stats socket\" line of its global section name %s?", ep.addr)
	case ep.kind == kindUnix && errors.Is(err, fs.ErrPermission):
		hint = permissionHint(ep.addr)
	case ep.kind == kindUnix && errors.Is(err, syscall.ECONNREFUSED):
		hint = "the socket file is there but no HAProxy listens on it: HAProxy stopped, or was restarted with another \"stats socket\" path"
	case ep.kind == kindTCP && errors.Is(err, syscall.ECONNREFUSED):
		hint = fmt.Sprintf("nothing listens on %s: check HAProxy's \"stats socket %s\" line", ep.addr, haproxyAddr(ep.addr))
	case ep.kind == kindHTTP && errors.Is(err, syscall.ECONNREFUSED):
		hint = fmt.Sprintf("nothing listens on %s: check the \"bind\" line of the HAProxy section holding \"stats uri\"", httpHostPort(ep.addr))
	default:
		return err
	}
	return fmt.Errorf("%w (%s)", err, hint)
}

// haproxyAddr writes host:port as a "stats socket" line does:
// ipv4@127.0.0.1:9999, ipv6@::1:9999.
func haproxyAddr(hostPort string) string {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "ipv4@" + hostPort
	}
	if strings.Contains(host, ":") {
		return "ipv6@" + host + ":" + port
	}
	return "ipv4@" + host + ":" + port
}

// httpHostPort is the host:port a stats page URL connects to.
func httpHostPort(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}
