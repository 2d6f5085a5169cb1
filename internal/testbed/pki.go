package testbed

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority with a server certificate for
// 127.0.0.1, ::1 and localhost and a client certificate, valid for an
// hour either side of its making. The CA and the client's certificate and
// key are PEM files, as a TLS client's configuration names them; the
// server's certificate is ready for a tls.Config (SinkOptions.TLS).
type PKI struct {
	// CAFile is the CA certificate (PEM): a client's tls_ca.
	CAFile string
	// Pool holds the CA certificate: a server's ClientCAs.
	Pool *x509.CertPool
	// Server is the server's certificate and key.
	Server tls.Certificate
	// ClientCert and ClientKey are the client's certificate and key (PEM):
	// a client's tls_cert and tls_key.
	ClientCert, ClientKey string

	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	next  int64 // the next serial number
}

// MakePKI makes a CA and its two certificates, writing the PEM files to
// dir: ca.pem, client.pem and client-key.pem.
func MakePKI(dir string) (*PKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hap-monitor test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	p := &PKI{Pool: x509.NewCertPool(), ca: ca, caKey: caKey, next: 4}
	p.Pool.AddCert(ca)
	if p.CAFile, err = writePEM(dir, "ca.pem", "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	issue := func(serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: "127.0.0.1"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			DNSNames:     []string{"localhost"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, fmt.Errorf("pki: certificate %d: %w", serial, err)
		}
		return der, key, nil
	}
	serverDER, serverKey, err := issue(2, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	p.Server = tls.Certificate{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}
	clientDER, clientKey, err := issue(3, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	if p.ClientCert, err = writePEM(dir, "client.pem", "CERTIFICATE", clientDER); err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		return nil, fmt.Errorf("pki: client key: %w", err)
	}
	if p.ClientKey, err = writePEM(dir, "client-key.pem", "EC PRIVATE KEY", keyDER); err != nil {
		return nil, err
	}
	return p, nil
}

// NewPKI is MakePKI for tests, writing to a temp dir removed when the
// test ends.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	p, err := MakePKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ServerTLS is a server configuration presenting the server certificate;
// with clientAuth it also requires a client certificate signed by the CA.
func (p *PKI) ServerTLS(clientAuth bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{p.Server}, MinVersion: tls.VersionTLS12}
	if clientAuth {
		cfg.ClientCAs = p.Pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg
}

func writePEM(dir, name, kind string, der []byte) (string, error) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		return "", fmt.Errorf("pki: %w", err)
	}
	return path, nil
}

// CertSpec is what a served certificate says: its names and dates, and
// where its OCSP responder answers (its issuer then goes in the file too,
// as HAProxy needs it to ask).
type CertSpec struct {
	CommonName          string
	DNSNames            []string
	NotBefore, NotAfter time.Time
	OCSPServer          string
}

// ServedCert makes a certificate as spec says, signed by the CA, and
// returns it with its key as one PEM file's bytes, as HAProxy's crt and
// "set ssl cert" take them.
func (p *PKI) ServedCert(spec CertSpec) (*x509.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	p.next++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.next<<32 | 0x5eed),
		Subject:      pkix.Name{CommonName: spec.CommonName, Organization: []string{"hap-monitor tests"}},
		DNSNames:     spec.DNSNames,
		NotBefore:    spec.NotBefore.UTC().Truncate(time.Second),
		NotAfter:     spec.NotAfter.UTC().Truncate(time.Second),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if spec.OCSPServer != "" {
		tmpl.OCSPServer = []string{spec.OCSPServer}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: certificate for %s: %w", spec.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: certificate for %s: %w", spec.CommonName, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: key for %s: %w", spec.CommonName, err)
	}
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if spec.OCSPServer != "" {
		pemData = append(pemData, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.ca.Raw})...)
	}
	pemData = append(pemData, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...)
	return cert, pemData, nil
}

// WriteServedCert is ServedCert written to path.
func (p *PKI) WriteServedCert(path string, spec CertSpec) (*x509.Certificate, error) {
	cert, data, err := p.ServedCert(spec)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return cert, nil
}
