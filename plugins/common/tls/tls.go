// Package tls builds a client *tls.Config from the TLS options Telegraf's
// plugins use (tls_ca, tls_cert, tls_key, tls_server_name,
// insecure_skip_verify), with the same TOML keys.
package tls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ClientConfig holds the TLS options of a plugin that connects to a server.
// Embed it in a plugin's config struct.
type ClientConfig struct {
	TLSCA              string `toml:"tls_ca"`
	TLSCert            string `toml:"tls_cert"`
	TLSKey             string `toml:"tls_key"`
	TLSServerName      string `toml:"tls_server_name"`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
	// TLSEnable asks for TLS with the system's roots when no other option is set.
	TLSEnable bool `toml:"tls_enable"`
}

// Enabled reports whether any option asks for TLS.
func (c *ClientConfig) Enabled() bool {
	return c.TLSEnable || c.TLSCA != "" || c.TLSCert != "" || c.TLSKey != "" ||
		c.TLSServerName != "" || c.InsecureSkipVerify
}

// TLSConfig returns the *tls.Config the options describe, or nil when none
// is set. Errors name the option at fault.
func (c *ClientConfig) TLSConfig() (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	cfg := &tls.Config{
		ServerName:         c.TLSServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // the user asked for it by name
		MinVersion:         tls.VersionTLS12,
	}
	if c.TLSCA != "" {
		pem, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("tls_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca: no PEM certificate found in %s", c.TLSCA)
		}
		cfg.RootCAs = pool
	}
	switch {
	case c.TLSCert != "" && c.TLSKey != "":
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("tls_cert/tls_key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case c.TLSCert != "":
		return nil, errors.New("tls_cert is set but tls_key is not")
	case c.TLSKey != "":
		return nil, errors.New("tls_key is set but tls_cert is not")
	}
	return cfg, nil
}
