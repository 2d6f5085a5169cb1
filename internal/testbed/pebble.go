package testbed

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// PebbleVersion is the release of Pebble, Let's Encrypt's ACME test
// server, that PebbleBinary builds.
const PebbleVersion = "v2.10.3"

// PebbleBinary returns the path of Pebble, built with `go install` from
// the module proxy into CacheDir()/pebble-v2.10.3 on first use.
func PebbleBinary(ctx context.Context) (string, error) {
	return installGoProgram(ctx, goProgram{
		name: "pebble", pkg: "github.com/letsencrypt/pebble/v2/cmd/pebble", version: PebbleVersion,
		works: func(_ context.Context, bin string) bool { return builtFrom(bin, PebbleVersion) },
		took:  "about 10 seconds",
	}, 5*time.Minute)
}

// Pebble is an ACME server that issues certificates at once: it takes
// every challenge as passed (PEBBLE_VA_ALWAYS_VALID), unless told to
// check them (PebbleOptions), and never rejects a nonce, so that a
// client's renewal succeeds on its first try. It serves
// its directory over TLS under a DNS name, with a certificate of a PKI:
// an ACME client trusts that PKI's CA and resolves the name (127.0.0.1)
// through a DNS server of the test's. Stop and Start make it unreachable
// and back, on the same address, with none of the accounts it knew.
type Pebble struct {
	// Directory is the ACME directory's URL, https://NAME:PORT/dir.
	Directory string
	// Addr is where it listens, 127.0.0.1:PORT.
	Addr string
	// HTTPPort is the port on which it fetches HTTP-01 challenges from
	// the names of a certificate, when it checks them.
	HTTPPort int

	name, dir, config, mgmt string
	resolver                string
	pool                    *x509.CertPool
	proc                    child
}

// PebbleOptions change what Pebble does.
type PebbleOptions struct {
	// Resolver, a DNS server's address (DNS.Addr), makes Pebble check
	// each HTTP-01 challenge for real: it resolves the certificate's name
	// there and fetches the challenge from it on HTTPPort. A name that
	// does not resolve fails its challenge at once.
	Resolver string
}

// NewPebble starts Pebble under the DNS name name, with a certificate
// pki issues for that name; it is stopped when t ends.
func NewPebble(t testing.TB, pki *PKI, name string) *Pebble {
	t.Helper()
	return NewPebbleWith(t, pki, name, PebbleOptions{})
}

// NewPebbleWith is NewPebble with options.
func NewPebbleWith(t testing.TB, pki *PKI, name string, opts PebbleOptions) *Pebble {
	t.Helper()
	NeedsPeer(t, "Pebble "+PebbleVersion+" (built from the Go module proxy)")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := newPebble(ctx, t.TempDir(), pki, name, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

func newPebble(ctx context.Context, dir string, pki *PKI, name string, opts PebbleOptions) (*Pebble, error) {
	if _, err := PebbleBinary(ctx); err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i])) }
	p := &Pebble{Addr: addr(0), mgmt: addr(1), HTTPPort: ports[2], name: name, dir: dir, config: filepath.Join(dir, "pebble.json"),
		resolver: opts.Resolver, pool: pki.Pool}
	p.Directory = "https://" + net.JoinHostPort(name, strconv.Itoa(ports[0])) + "/dir"
	_, certPEM, err := pki.ServedCert(CertSpec{CommonName: name, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)})
	if err != nil {
		return nil, err
	}
	certFile := filepath.Join(dir, "pebble.pem") // the certificate and its key
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return nil, fmt.Errorf("pebble: %w", err)
	}
	type profile struct {
		Description    string `json:"description"`
		ValidityPeriod int    `json:"validityPeriod"`
	}
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":           p.Addr,
		"managementListenAddress": p.mgmt,
		"certificate":             certFile,
		"privateKey":              certFile,
		// Where it checks challenges, when it does.
		"httpPort": ports[2], "tlsPort": ports[3],
		"externalAccountBindingRequired": false,
		"keyAlgorithm":                   "ecdsa",
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"profiles":                       map[string]profile{"default": {Description: "90 days", ValidityPeriod: 90 * 24 * 3600}},
	}}
	data, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.config, data, 0o644); err != nil {
		return nil, fmt.Errorf("pebble: %w", err)
	}
	return p, nil
}

// Start runs Pebble and waits until its directory answers.
func (p *Pebble) Start(ctx context.Context) error {
	bin, err := PebbleBinary(ctx)
	if err != nil {
		return err
	}
	args := []string{"-config", p.config}
	env := append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	if p.resolver != "" {
		args = append(args, "-dnsserver", p.resolver)
	} else {
		env = append(env, "PEBBLE_VA_ALWAYS_VALID=1")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	err = p.proc.start(ctx, cmd, p.logPath(), 50*time.Millisecond, func(ctx context.Context) error {
		_, err := p.get(ctx, p.Addr, "/dir")
		return err
	})
	if err != nil {
		return fmt.Errorf("pebble on %s: %w: %s", p.Addr, err, p.Log())
	}
	return nil
}

// Stop ends Pebble, if it runs.
func (p *Pebble) Stop() { p.proc.stop() }

// Log is the end of what Pebble printed: the requests it took and the
// certificates it issued.
func (p *Pebble) Log() string { return fileTail(p.logPath()) }

func (p *Pebble) logPath() string { return filepath.Join(p.dir, "pebble.log") }

// Issuer is the certificate Pebble issues certificates with now (each
// start makes a new one).
func (p *Pebble) Issuer(ctx context.Context) (*x509.Certificate, error) {
	data, err := p.get(ctx, p.mgmt, "/intermediates/0")
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("pebble: no PEM in its intermediate: %q", data)
	}
	return x509.ParseCertificate(block.Bytes)
}

// get asks Pebble at addr for path, as a client that knows it by its name.
func (p *Pebble) get(ctx context.Context, addr, path string) ([]byte, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.pool, ServerName: p.name, MinVersion: tls.VersionTLS12},
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("pebble: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("pebble: GET %s: %s %v", path, resp.Status, err)
	}
	return body, nil
}
