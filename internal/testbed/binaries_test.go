package testbed

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTelegrafBinary(t *testing.T) {
	bin := Telegraf(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v: %s", bin, err, out)
	}
	if !strings.HasPrefix(string(out), "Telegraf 1.39.3") {
		t.Errorf("%s --version = %q, want Telegraf 1.39.3", bin, out)
	}
	// The custom build holds the plugins the end-to-end tests use.
	for _, kind := range []string{"inputs", "outputs"} {
		out, err := exec.CommandContext(ctx, bin, "plugins", kind).CombinedOutput()
		if err != nil {
			t.Fatalf("%s plugins %s: %v: %s", bin, kind, err, out)
		}
		have := strings.Fields(string(out))
		for _, want := range map[string][]string{"inputs": {"execd", "haproxy"}, "outputs": {"execd", "file", "graphite"}}[kind] {
			if !slices.Contains(have, kind+"."+want) {
				t.Errorf("%s plugins %s = %v, lacks %s", bin, kind, have, want)
			}
		}
	}
}

func TestHapMonitorBinary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin, err := HapMonitorBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, err := HapMonitorBinary(ctx)
	if err != nil || again != bin {
		t.Errorf("second HapMonitorBinary = %q, %v; want %q (built once)", again, err, bin)
	}
	out, err := exec.CommandContext(ctx, bin, "-version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "hap-monitor ") {
		t.Errorf("%s -version = %q, %v", bin, out, err)
	}
}
