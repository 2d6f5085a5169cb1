package haproxy

import (
	"context"
	stdtls "crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

type endpointKind uint8

const (
	kindUnix endpointKind = iota
	kindTCP
	kindHTTP
)

// endpoint is one place to read statistics from, resolved from a servers
// entry.
type endpoint struct {
	kind endpointKind
	addr string // unix socket path, TCP host:port, or the URL to GET
	tag  string // the server tag, as Telegraf computes it
	name string // how messages name it: path, tcp://host:port, URL without password
	user *url.Userinfo
	// master marks a master CLI (a "master:" entry): its workers are
	// reached through it (see master.go).
	master bool
}

// defaultServer is Telegraf's default when servers is empty.
const defaultServer = "http://127.0.0.1:1936/haproxy?stats"

// parseServer turns one servers entry into its endpoint. A unix socket
// entry is returned as is: it may be a glob, expanded at each gather.
func parseServer(s string) (endpoint, error) {
	if rest, ok := strings.CutPrefix(s, masterPrefix); ok {
		return parseMasterServer(s, rest)
	}
	switch {
	case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
		return parseHTTPServer(s)
	case strings.HasPrefix(s, "tcp://"):
		addr := strings.TrimPrefix(s, "tcp://")
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return endpoint{}, fmt.Errorf("%q: %w", s, err)
		}
		return endpoint{kind: kindTCP, addr: addr, tag: addr, name: s}, nil
	}
	path := socketPath(s)
	if path == "" {
		return endpoint{}, fmt.Errorf("%q: empty socket path", s)
	}
	if _, err := filepath.Match(path, ""); err != nil {
		return endpoint{}, fmt.Errorf("%q: bad glob: %w", s, err)
	}
	return endpoint{kind: kindUnix, addr: path, tag: path, name: path}, nil
}

// socketPath strips the "unix://" or "socket:" prefix (Telegraf drops
// whatever comes before the first colon).
func socketPath(s string) string {
	if p, ok := strings.CutPrefix(s, "unix://"); ok {
		return p
	}
	if _, p, ok := strings.Cut(s, ":"); ok {
		return p
	}
	return s
}

// parseHTTPServer builds the CSV URL as Telegraf does: "/;csv" appended
// unless the URL already ends with ";csv"; credentials in the URL move to
// basic auth; the server tag is the URL's host:port.
func parseHTTPServer(s string) (endpoint, error) {
	addr := s
	if !strings.HasSuffix(addr, ";csv") {
		addr += "/;csv"
	}
	u, err := url.Parse(addr)
	if err != nil {
		return endpoint{}, fmt.Errorf("%q: %w", redact(s), err)
	}
	if u.Host == "" {
		return endpoint{}, fmt.Errorf("%q: no host", redact(s))
	}
	ep := endpoint{kind: kindHTTP, tag: u.Host, user: u.User}
	u.User = nil
	ep.addr = u.String()
	ep.name = ep.addr
	return ep, nil
}

// redact hides a password in a URL for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// hasGlobMeta reports whether path has glob metacharacters.
func hasGlobMeta(path string) bool { return strings.ContainsAny(path, `*?[\`) }

// expand returns the endpoints a unix entry names at this moment: the
// glob's matches, or the path itself when it is not a glob (so that a
// missing socket is reported by the dial that fails). A glob matching
// nothing is an error naming it.
func (ep endpoint) expand() ([]endpoint, error) {
	if ep.kind != kindUnix || !hasGlobMeta(ep.addr) {
		return []endpoint{ep}, nil
	}
	matches, err := filepath.Glob(ep.addr)
	if err != nil {
		return nil, fmt.Errorf("servers: glob %q: %w", ep.addr, err)
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("servers: no socket matches %q", ep.addr)
	}
	out := make([]endpoint, len(matches))
	for i, m := range matches {
		out[i] = endpoint{kind: kindUnix, addr: m, tag: m, name: m, master: ep.master}
		if ep.master {
			out[i].name = masterPrefix + m
		}
	}
	return out, nil
}

// maxTrailing bounds what is read and dropped after the last answer,
// waiting for HAProxy to close the connection.
const maxTrailing = 1 << 20

// querySocket sends command on a new connection to ep and hands the
// answer to read. The whole exchange (dial, write, read) ends at ctx's
// deadline. After read returns, the rest is read to EOF (up to
// maxTrailing bytes) so that HAProxy ends the session itself.
func querySocket(ctx context.Context, ep endpoint, command string, read func(*lineReader) error) (int64, error) {
	network := "unix"
	if ep.kind == kindTCP {
		network = "tcp"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, ep.addr)
	if err != nil {
		return 0, explainDial(ctx, ep, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return 0, err
		}
	}
	if _, err := io.WriteString(conn, command); err != nil {
		return 0, fmt.Errorf("write: %w", describe(ctx, err))
	}
	if ep.master {
		// The master CLI waits for more commands until the client is done
		// writing; a stats socket closes after one line by itself.
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			if err := cw.CloseWrite(); err != nil {
				return 0, fmt.Errorf("write: %w", describe(ctx, err))
			}
		}
	}
	ra := newReadAhead(conn)
	defer ra.stop()
	if err := read(newLineReader(ra)); err != nil {
		return ra.count(), describe(ctx, err)
	}
	if _, err := io.CopyN(io.Discard, ra, maxTrailing); err != nil && !errors.Is(err, io.EOF) {
		return ra.count(), describe(ctx, err)
	}
	return ra.count(), nil
}

// describe turns the error of an expired deadline into a plain sentence.
func describe(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("no complete answer within the timeout: %w", err)
	}
	return err
}

// queryHTTP GETs the CSV stats page and hands the body to read.
func queryHTTP(ctx context.Context, client *http.Client, ep endpoint, username, password string, read func(*lineReader) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.addr, nil)
	if err != nil {
		return err
	}
	if ep.user != nil {
		p, _ := ep.user.Password()
		req.SetBasicAuth(ep.user.Username(), p)
	}
	if username != "" || password != "" {
		req.SetBasicAuth(username, password)
	}
	resp, err := client.Do(req)
	if err != nil {
		return explainDial(ctx, ep, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP status %s", resp.Status)
	}
	body := newReadAhead(resp.Body)
	defer body.stop()
	if err := read(newLineReader(body)); err != nil {
		return describe(ctx, err)
	}
	_, err = io.CopyN(io.Discard, body, maxTrailing)
	if err != nil && !errors.Is(err, io.EOF) {
		return describe(ctx, err)
	}
	return nil
}

// newHTTPClient returns the client for stats pages. Deadlines come from
// each request's context.
func newHTTPClient(tlsCfg *stdtls.Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.Proxy = nil
	return &http.Client{Transport: tr}
}
