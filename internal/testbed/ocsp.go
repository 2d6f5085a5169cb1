package testbed

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// OCSPResponder is Debian's `openssl ocsp` answering for a PKI's
// certificates on a loopback port, with responses valid for a day. Make
// it first (its URL goes in the certificates), Add the certificates, then
// Start it; Stop and Start it again to make it unreachable for a while.
type OCSPResponder struct {
	// URL is what a certificate names as its OCSP responder.
	URL string

	dir, index, caFile, keyFile string
	port                        int
	proc                        child
}

// NewOCSPResponder makes a responder for pki's CA, stopped when t ends.
func NewOCSPResponder(t testing.TB, pki *PKI) *OCSPResponder {
	t.Helper()
	NeedsPeer(t, "openssl (apt-get install openssl)")
	r, err := newOCSPResponder(t.TempDir(), pki)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

func newOCSPResponder(dir string, pki *PKI) (*OCSPResponder, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &OCSPResponder{URL: fmt.Sprintf("http://127.0.0.1:%d", port), dir: dir, port: port,
		index: filepath.Join(dir, "index.txt"), caFile: filepath.Join(dir, "ca.pem"), keyFile: filepath.Join(dir, "ca-key.pem")}
	keyDER, err := x509.MarshalECPrivateKey(pki.caKey)
	if err != nil {
		return nil, fmt.Errorf("ocsp responder: CA key: %w", err)
	}
	for path, block := range map[string]*pem.Block{
		r.caFile:  {Type: "CERTIFICATE", Bytes: pki.ca.Raw},
		r.keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER},
		r.index:   nil,
	} {
		var data []byte
		if block != nil {
			data = pem.EncodeToMemory(block)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("ocsp responder: %w", err)
		}
	}
	return r, nil
}

// Add makes the responder answer "good" for cert.
func (r *OCSPResponder) Add(cert *x509.Certificate) error {
	line := fmt.Sprintf("V\t%s\t\t%s\tunknown\t/CN=%s\n", cert.NotAfter.UTC().Format("060102150405Z"),
		strings.ToUpper(cert.SerialNumber.Text(16)), cert.Subject.CommonName)
	f, err := os.OpenFile(r.index, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("ocsp responder index: %w", err)
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("ocsp responder index: %w", err)
	}
	return f.Close()
}

// Start runs the responder and waits until it listens.
func (r *OCSPResponder) Start(ctx context.Context) error {
	openssl, err := findProgram("openssl", "apt-get install openssl")
	if err != nil {
		return err
	}
	cmd := exec.Command(openssl, "ocsp", "-index", r.index, "-port", strconv.Itoa(r.port),
		"-rsigner", r.caFile, "-rkey", r.keyFile, "-CA", r.caFile, "-ndays", "1")
	// Ready when it says so: a connection to see would be its one
	// client, as it answers one at a time, and one that sends nothing
	// holds it.
	err = r.proc.start(ctx, cmd, filepath.Join(r.dir, "ocsp.log"), 20*time.Millisecond, func(context.Context) error {
		if strings.Contains(r.Log(), "waiting for OCSP client connections") {
			return nil
		}
		return errors.New("not listening yet")
	})
	if err != nil {
		return fmt.Errorf("openssl ocsp on port %d: %w: %s", r.port, err, r.Log())
	}
	return nil
}

// Stop ends the responder, if it runs.
func (r *OCSPResponder) Stop() { r.proc.stop() }

// Log is the end of what the responder printed: the requests it took.
func (r *OCSPResponder) Log() string { return fileTail(filepath.Join(r.dir, "ocsp.log")) }
