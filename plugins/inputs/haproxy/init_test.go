package haproxy

import (
	"strings"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/tls"
)

func TestInitRejects(t *testing.T) {
	tests := []struct {
		name string
		h    HAProxy
		want string
	}{
		{"negative timeout", HAProxy{Timeout: config.Duration(-time.Second)}, "timeout"},
		{"unknown type", HAProxy{Types: []string{"servers"}}, `types: unknown row type "servers"`},
		{"proxy with a space", HAProxy{Proxies: []string{"a b"}}, "proxies"},
		{"proxy with a semicolon", HAProxy{Proxies: []string{"a;disable server x/y"}}, "proxies"},
		{"empty proxy", HAProxy{Proxies: []string{""}}, "proxies"},
		{"bad include glob", HAProxy{IncludeFields: []string{"status[.*"}}, "include_fields"},
		{"tcp without port", HAProxy{Servers: []string{"tcp://127.0.0.1"}}, "servers"},
		{"http without host", HAProxy{Servers: []string{"http:///stats"}}, "servers"},
		{"bad glob", HAProxy{Servers: []string{"/run/haproxy/[.sock"}}, "servers"},
		{"empty socket", HAProxy{Servers: []string{"socket:"}}, "servers"},
		{"tls key without cert", HAProxy{ClientConfig: tls.ClientConfig{TLSKey: "/k.pem"}}, "tls"},
		{"missing tls ca", HAProxy{ClientConfig: tls.ClientConfig{TLSCA: "/nonexistent/ca.pem"}}, "tls_ca"},
		{"unknown optional measurement", HAProxy{OptionalMeasurements: []string{"haproxy_certs"}}, `optional_measurements: unknown measurement "haproxy_certs"`},
		{"negative certificate interval", HAProxy{CertificateDetailsInterval: config.Duration(-time.Minute)}, "certificate_details_interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.h.Init()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Init() = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

func TestServerForms(t *testing.T) {
	tests := []struct {
		in         string
		kind       endpointKind
		addr, tag  string
		user, pass string
	}{
		{"/run/haproxy/admin.sock", kindUnix, "/run/haproxy/admin.sock", "/run/haproxy/admin.sock", "", ""},
		{"socket:/run/haproxy/admin.sock", kindUnix, "/run/haproxy/admin.sock", "/run/haproxy/admin.sock", "", ""},
		{"unix:///run/haproxy/admin.sock", kindUnix, "/run/haproxy/admin.sock", "/run/haproxy/admin.sock", "", ""},
		{"tcp://127.0.0.1:9999", kindTCP, "127.0.0.1:9999", "127.0.0.1:9999", "", ""},
		{"http://127.0.0.1:1936/haproxy?stats", kindHTTP, "http://127.0.0.1:1936/haproxy?stats/;csv", "127.0.0.1:1936", "", ""},
		{"https://admin:secret@lb.example.com:8000/stats;csv", kindHTTP, "https://lb.example.com:8000/stats;csv", "lb.example.com:8000", "admin", "secret"},
	}
	for _, tt := range tests {
		ep, err := parseServer(tt.in)
		if err != nil {
			t.Errorf("parseServer(%q): %v", tt.in, err)
			continue
		}
		if ep.kind != tt.kind || ep.addr != tt.addr || ep.tag != tt.tag {
			t.Errorf("parseServer(%q) = kind %d addr %q tag %q; want %d %q %q", tt.in, ep.kind, ep.addr, ep.tag, tt.kind, tt.addr, tt.tag)
		}
		if tt.user != "" {
			p, _ := ep.user.Password()
			if ep.user.Username() != tt.user || p != tt.pass {
				t.Errorf("parseServer(%q): credentials %v", tt.in, ep.user)
			}
			if strings.Contains(ep.name, tt.pass) {
				t.Errorf("parseServer(%q): the name for messages shows the password: %s", tt.in, ep.name)
			}
		}
	}
	h := newPlugin(t, &HAProxy{})
	if len(h.endpoints) != 1 || h.endpoints[0].addr != defaultServer+"/;csv" || time.Duration(h.Timeout) != DefaultTimeout {
		t.Errorf("defaults: endpoints %+v timeout %s", h.endpoints, h.Timeout)
	}
}
