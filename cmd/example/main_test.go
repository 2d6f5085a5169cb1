package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// TestExample runs the example as ./scripts/example does: it starts its
// own HAProxy, prints line protocol and the Graphite lines of the
// original's command line, and removes HAProxy's sockets at the end.
func TestExample(t *testing.T) {
	testbed.NeedsPeer(t, "HAProxy")
	var stdout, stderr bytes.Buffer
	if code := run(nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	checkOutput(t, stdout.String())
	m := regexp.MustCompile(`admin socket (\S+),`).FindStringSubmatch(stderr.String())
	if m == nil || !strings.Contains(stderr.String(), "its sockets are gone") {
		t.Fatalf("stderr does not name the socket and say it is gone:\n%s", &stderr)
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("socket %s after the example: %v, want it gone", m[1], err)
	}
}

// TestExampleOwnSocket runs the example on a socket it is given, at
// level user, as ./scripts/example /run/haproxy/admin.sock does.
func TestExampleOwnSocket(t *testing.T) {
	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	var stdout, stderr bytes.Buffer
	if code := run([]string{h.UserSocket}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	checkOutput(t, stdout.String())
	if strings.Contains(stderr.String(), "HAProxy pid") {
		t.Errorf("the example started an HAProxy of its own:\n%s", &stderr)
	}
	if _, err := os.Stat(h.UserSocket); err != nil {
		t.Errorf("the given socket: %v, want it left alone", err)
	}
}

func checkOutput(t *testing.T, out string) {
	t.Helper()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^haproxy,.*proxy=app\.v1,.*sv=web-2,.*status\.DOWN=1i`),
		regexp.MustCompile(`(?m)^# \d+ lines received\n# the first 15:$`),
		regexp.MustCompile(`(?m)^my\.system\.stats\.haproxy\.[^.]+\.1\.Idle_pct \d+ \d+$`),
		regexp.MustCompile(`(?m)^my\.system\.stats\.haproxy\.[^.]+\.1\.app_v1\.web-2\.status\.DOWN 1 \d+$`),
		regexp.MustCompile(`(?m)^my\.system\.stats\.haproxy\.[^.]+\.1\.app_v1\.web:3\.status\.MAINT 1 \d+$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("stdout has no line matching %s:\n%s", want, out)
		}
	}
}
