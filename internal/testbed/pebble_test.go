package testbed

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestPebble: Pebble serves its directory to a client that trusts the
// PKI and knows it by its name, tells the intermediate it issues with,
// refuses while stopped, and comes back on the same address with a new
// intermediate.
func TestPebble(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p := NewPebble(t, NewPKI(t), "acme.test")
	if !strings.HasPrefix(p.Directory, "https://acme.test:") || !strings.HasSuffix(p.Directory, "/dir") {
		t.Errorf("Directory = %q", p.Directory)
	}
	dir, err := p.get(ctx, p.Addr, "/dir")
	if err != nil || !strings.Contains(string(dir), `"newOrder"`) {
		t.Fatalf("directory: %q %v", dir, err)
	}
	first, err := p.Issuer(ctx)
	if err != nil || !strings.HasPrefix(first.Subject.CommonName, "Pebble Intermediate CA") {
		t.Fatalf("issuer: %v %v", first, err)
	}
	p.Stop()
	if _, err := p.get(ctx, p.Addr, "/dir"); err == nil {
		t.Fatal("the directory answers while Pebble is stopped")
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := p.Issuer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.Subject.CommonName == first.Subject.CommonName {
		t.Errorf("the same intermediate %q after a restart, want a new one", again.Subject.CommonName)
	}
}
