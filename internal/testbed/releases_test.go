package testbed

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestParseDepends reads apt-cache depends --recurse as HAProxy 3.2's
// package gives it (sid, cut short).
func TestParseDepends(t *testing.T) {
	out := `haproxy
  Depends: libc6
  Depends: libssl3t64
  Depends: adduser
 |Depends: liblua5.4-0
  Depends: liblua5.3-0
  Depends: <debconf-2.0>
    cdebconf
  PreDepends: libzstd1
libc6
  Depends: libgcc-s1
libssl3t64
  Depends: libc6
  Depends: zlib1g
adduser
  Depends: passwd
`
	deps := parseDepends([]byte(out))
	want := map[string][]string{
		"haproxy":    {"libc6", "libssl3t64", "adduser", "liblua5.4-0", "libzstd1"},
		"libc6":      {"libgcc-s1"},
		"libssl3t64": {"libc6", "zlib1g"},
		"adduser":    {"passwd"},
	}
	for pkg, w := range want {
		if !slices.Equal(deps[pkg], w) {
			t.Errorf("%s depends on %v, want %v", pkg, deps[pkg], w)
		}
	}
}

func TestCheckLibraries(t *testing.T) {
	root := "/cache/haproxy-3.2/root"
	good := "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => " + root + "/usr/lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t" + root + "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 (0x7f)\n"
	if err := checkLibraries([]byte(good), root); err != nil {
		t.Errorf("all under root: %v", err)
	}
	for _, bad := range []string{
		"\tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x7f)\n",
		"\tliblua5.4.so.0 => not found\n",
	} {
		if err := checkLibraries([]byte(good+bad), root); err == nil || !strings.Contains(err.Error(), strings.Fields(bad)[0]) {
			t.Errorf("%q: err = %v, want it named", bad, err)
		}
	}
}

func TestDeb822(t *testing.T) {
	f := deb822("Types: deb\n# a comment: here\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n")
	if f["types"] != "deb" || f["uris"] != "http://mirror.example/debian" || f["components"] != "main" || len(f) != 4 {
		t.Errorf("deb822: %v", f)
	}
}

// TestParseProcesses reads show proc as 2.2 and 3.2 print it after a
// failed reload: no current worker, the serving one among the old.
func TestParseProcesses(t *testing.T) {
	tests := map[string]Processes{
		`#<PID>          <type>          <relative PID>  <reloads>       <uptime>        <version>
14918           master          0               2               0d00h00m03s     2.2.9-2+deb11u6
# workers
# old workers
14922           worker          [was: 1]        1               0d00h00m02s     2.2.9-2+deb11u6
14919           worker          [was: 1]        2               0d00h00m03s     2.2.9-2+deb11u6
# programs
`: {Master: 14918, Reloads: 2, Old: []int{14922, 14919}, OldReloads: []int{1, 2}},
		`#<PID>          <type>          <reloads>       <uptime>        <version>
14992           master          2 [failed: 1]   0d00h00m02s     3.2.26-1
# workers
# old workers
14996           worker          1               0d00h00m02s     3.2.26-1
14993           worker          2               0d00h00m02s     3.2.26-1
`: {Master: 14992, Reloads: 2, FailedReloads: 1, Old: []int{14996, 14993}, OldReloads: []int{1, 2}},
	}
	for answer, want := range tests {
		got, err := parseProcesses(answer)
		if err != nil {
			t.Fatal(err)
		}
		if got.Master != want.Master || got.Reloads != want.Reloads || got.FailedReloads != want.FailedReloads ||
			len(got.Current) != 0 || !slices.Equal(got.Old, want.Old) || !slices.Equal(got.OldReloads, want.OldReloads) {
			t.Errorf("parseProcesses: %+v, want %+v", got, want)
		}
	}
}

// TestReleaseBinary fetches (once, then from the cache) each release the
// live tests run on, and checks that it runs and says its version.
func TestReleaseBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("needs apt-get, dpkg, patchelf and the Debian mirror")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*releaseFetchTimeout)
	defer cancel()
	for _, rel := range HAProxyReleases {
		bin, err := ReleaseBinary(ctx, rel.Version)
		if err != nil {
			t.Errorf("HAProxy %s: %v", rel.Version, err)
			continue
		}
		v, err := HAProxyVersionOf(ctx, bin)
		if err != nil || !strings.HasPrefix(v, rel.Version+".") {
			t.Errorf("HAProxy %s: %s says %q %v", rel.Version, bin, v, err)
		}
	}
	if _, err := ReleaseBinary(ctx, "1.4"); err == nil || !strings.Contains(err.Error(), "2.2, 2.6, 3.0, 3.2") {
		t.Errorf("an unknown release: err = %v, want the known ones named", err)
	}
	t.Setenv(HAProxyEnv, "/nonexistent/haproxy")
	if _, err := HAProxyBinary(ctx); err == nil || !strings.Contains(err.Error(), HAProxyEnv) {
		t.Errorf("a missing path: err = %v, want it to name %s", err, HAProxyEnv)
	}
}
