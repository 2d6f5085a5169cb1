package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DNS is Debian's dnsmasq answering on a loopback port for the names of
// the zone .test (names it does not hold get NXDOMAIN), from a hosts file
// the test sets. Stop and Start make it unreachable and back.
type DNS struct {
	// Addr is "127.0.0.1:PORT", a resolvers section's nameserver.
	Addr string

	dir, hosts string
	port       int
	proc       child
}

// NewDNS starts a DNS server holding names (name -> address), stopped
// when t ends.
func NewDNS(t testing.TB, names map[string]string) *DNS {
	t.Helper()
	NeedsPeer(t, "dnsmasq (apt-get install dnsmasq-base)")
	d := &DNS{dir: t.TempDir()}
	d.hosts = filepath.Join(d.dir, "hosts")
	port, err := freeUDPPort()
	if err != nil {
		t.Fatal(err)
	}
	d.port, d.Addr = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := d.writeHosts(names); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *DNS) writeHosts(names map[string]string) error {
	var lines []string
	for name, addr := range names {
		lines = append(lines, addr+" "+name)
	}
	sort.Strings(lines)
	return os.WriteFile(d.hosts, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// SetNames replaces the names it holds, at once (dnsmasq reads its hosts
// file again on SIGHUP).
func (d *DNS) SetNames(names map[string]string) error {
	if err := d.writeHosts(names); err != nil {
		return err
	}
	return d.proc.signal(syscall.SIGHUP)
}

// Start runs dnsmasq and waits until it answers.
func (d *DNS) Start(ctx context.Context) error {
	bin, err := findProgram("dnsmasq", "apt-get install dnsmasq-base")
	if err != nil {
		return err
	}
	log := filepath.Join(d.dir, "dnsmasq.log")
	cmd := exec.Command(bin, "--keep-in-foreground", "--port="+strconv.Itoa(d.port), "--listen-address=127.0.0.1",
		"--bind-interfaces", "--no-resolv", "--no-hosts", "--addn-hosts="+d.hosts, "--local=/test/",
		"--pid-file="+filepath.Join(d.dir, "dnsmasq.pid"), "--log-facility="+log, "--user=root")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", d.Addr)
	}}
	err = d.proc.start(ctx, cmd, "", 20*time.Millisecond, func(ctx context.Context) error {
		qctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := r.LookupHost(qctx, "ready.test")
		var dnsErr *net.DNSError
		if err == nil || errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil // it answers
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("dnsmasq on %s: %w: %s", d.Addr, err, fileTail(log))
	}
	return nil
}

// Stop ends dnsmasq, if it runs.
func (d *DNS) Stop() { d.proc.stop() }
