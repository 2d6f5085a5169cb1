package testbed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// An HAProxyRelease is an HAProxy release the test bed runs live, taken
// from the Debian suite that ships it.
type HAProxyRelease struct {
	Version string // major.minor: "2.2"
	Suite   string // the Debian suite that ships it: "bullseye"
	// Beside is the suite Suite is installed on top of, for a suite that
	// holds only what differs from it: experimental's haproxy links
	// libraries that only sid has. Packages come from Suite where it has
	// them, else from Beside, as apt itself installs experimental.
	Beside string
}

// HAProxyReleases are the releases the live tests run on: what RHEL 9 and
// older Debian hosts run (2.2), Debian 12 (2.6), Debian 13 (3.0), the LTS
// before (3.2) and the current LTS (3.4).
var HAProxyReleases = []HAProxyRelease{
	{Version: "2.2", Suite: "bullseye"},
	{Version: "2.6", Suite: "bookworm"},
	{Version: "3.0", Suite: "trixie"},
	{Version: "3.2", Suite: "sid"},
	{Version: "3.4", Suite: "experimental", Beside: "sid"},
}

// HAProxyEnv names the environment variable that chooses the HAProxy the
// test bed starts: a version of HAProxyReleases ("3.2") or the path of an
// haproxy binary. Unset, it is the system's haproxy.
const HAProxyEnv = "HAP_MONITOR_HAPROXY"

// HAProxyBinary returns the haproxy that StartHAProxy runs: the one
// $HAP_MONITOR_HAPROXY names (see HAProxyEnv), else the system's.
func HAProxyBinary(ctx context.Context) (string, error) {
	return FindHAProxy(ctx, os.Getenv(HAProxyEnv))
}

// FindHAProxy returns the haproxy binary that which names: "" for the
// system's, a version of HAProxyReleases (see ReleaseBinary), or a path.
func FindHAProxy(ctx context.Context, which string) (string, error) {
	switch {
	case which == "":
		return findProgram("haproxy", "apt-get install haproxy")
	case strings.ContainsRune(which, '/'):
		if _, err := os.Stat(which); err != nil {
			return "", fmt.Errorf("%s=%s: %w", HAProxyEnv, which, err)
		}
		return which, nil
	}
	return ReleaseBinary(ctx, which)
}

// releaseFetchTimeout bounds fetching one release: apt's lists of a suite
// (about 17 MB) and 14-16 packages (about 11 MB).
const releaseFetchTimeout = 10 * time.Minute

// ReleaseBinary returns an haproxy of the given version of
// HAProxyReleases. The system's haproxy serves when it is that version.
// Otherwise the release's Debian packages (haproxy and the libraries it
// links) are fetched with apt-get, into a state of their own that never
// touches the system's, from the mirror of the system's own apt sources,
// and unpacked with dpkg -x into CacheDir()/haproxy-<version>/root. The
// binary there is rewritten with patchelf to load that root's loader and
// libraries, so that it runs as it is and a master re-executing itself on
// a reload finds them too. This is done once, under a file lock; later
// calls check the unpacked binary and return it.
func ReleaseBinary(ctx context.Context, version string) (string, error) {
	var rel HAProxyRelease
	for _, r := range HAProxyReleases {
		if r.Version == version {
			rel = r
		}
	}
	if rel.Version == "" {
		var known []string
		for _, r := range HAProxyReleases {
			known = append(known, r.Version)
		}
		return "", fmt.Errorf("HAProxy %q: the test bed runs %s, or a path to an haproxy binary", version, strings.Join(known, ", "))
	}
	if sys, err := findProgram("haproxy", ""); err == nil && haproxyIs(ctx, sys, version) == nil {
		return sys, nil
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "haproxy-"+rel.Version)
	bin := filepath.Join(dir, "root", "usr", "sbin", "haproxy")
	if haproxyIs(ctx, bin, rel.Version) == nil {
		return bin, nil
	}
	ctx, cancel := withDefaultTimeout(ctx, releaseFetchTimeout)
	defer cancel()
	err = withFileLock(ctx, dir+".lock", func() error {
		if haproxyIs(ctx, bin, rel.Version) == nil {
			return nil // fetched by another process meanwhile
		}
		fmt.Fprintf(os.Stderr, "testbed: fetching HAProxy %s from Debian %s into %s (about a minute, once)\n", rel.Version, rel.Suite, dir)
		if err := fetchRelease(ctx, rel, dir); err != nil {
			return fmt.Errorf("HAProxy %s from Debian %s: %w", rel.Version, rel.Suite, err)
		}
		return haproxyIs(ctx, bin, rel.Version)
	})
	if err != nil {
		return "", err
	}
	return bin, nil
}

// haproxyIs checks that bin runs and says it is HAProxy version.
func haproxyIs(ctx context.Context, bin, version string) error {
	got, err := HAProxyVersionOf(ctx, bin)
	if err != nil {
		return err
	}
	if got != version && !strings.HasPrefix(got, version+".") {
		return fmt.Errorf("%s is HAProxy %q, not %s", bin, got, version)
	}
	return nil
}

var versionRE = regexp.MustCompile(`(?:HA-Proxy|HAProxy) version ([0-9][^ ]*)`)

// HAProxyVersionOf returns the version an haproxy binary reports,
// "2.6.12-1+deb12u4".
func HAProxyVersionOf(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-v").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s -v: %w: %s", bin, err, tail(out, 500))
	}
	if m := versionRE.FindSubmatch(out); m != nil {
		return string(m[1]), nil
	}
	return "", fmt.Errorf("%s -v says no version: %s", bin, tail(out, 500))
}

// fetchRelease downloads and unpacks rel into dir/root.
func fetchRelease(ctx context.Context, rel HAProxyRelease, dir string) error {
	patchelf, err := findProgram("patchelf", "apt-get install patchelf")
	if err != nil {
		return err
	}
	mirror, keyring, err := debianMirror()
	if err != nil {
		return err
	}
	a, err := newAptState(filepath.Join(dir, "apt"), rel, mirror, keyring)
	if err != nil {
		return err
	}
	if _, err := a.run(ctx, "apt-get", "update"); err != nil {
		return err
	}
	pkgs, err := a.libraryClosure(ctx, "haproxy")
	if err != nil {
		return err
	}
	debs := filepath.Join(dir, "debs")
	if err := resetDir(debs); err != nil {
		return err
	}
	// Each package's candidate: Suite's version where it has one (the
	// state's default release), else Beside's.
	args := append([]string{"download"}, pkgs...)
	if _, err := a.runIn(ctx, debs, "apt-get", args...); err != nil {
		return err
	}
	root := filepath.Join(dir, "root")
	if err := resetDir(root); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(debs, "*.deb"))
	if err != nil || len(files) != len(pkgs) {
		return fmt.Errorf("apt-get download left %d .deb files in %s for %d packages", len(files), debs, len(pkgs))
	}
	for _, f := range files {
		if out, err := exec.CommandContext(ctx, "dpkg", "-x", f, root).CombinedOutput(); err != nil {
			return fmt.Errorf("dpkg -x %s: %w: %s", f, err, tail(out, 500))
		}
	}
	if err := relativeLinks(root); err != nil {
		return err
	}
	return relocate(ctx, patchelf, root)
}

// debianMirror returns the URI and keyring of the system's Debian
// archive, read from its apt sources (deb822 .sources files, then
// sources.list lines): the entry that serves a suite's main component,
// not its security updates.
func debianMirror() (uri, keyring string, err error) {
	keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, stanza := range strings.Split(string(data), "\n\n") {
			fields := deb822(stanza)
			if fields["types"] != "deb" || !strings.Contains(fields["components"], "main") ||
				strings.Contains(fields["suites"], "security") || fields["uris"] == "" {
				continue
			}
			if k := fields["signed-by"]; strings.HasPrefix(k, "/") {
				keyring = k
			}
			return strings.Fields(fields["uris"])[0], keyring, nil
		}
	}
	if data, err := os.ReadFile("/etc/apt/sources.list"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) > 0 && f[0] == "deb" {
				f = f[1:]
				for len(f) > 0 && strings.HasPrefix(f[0], "[") { // [signed-by=...]
					f = f[1:]
				}
				if len(f) >= 3 && !strings.Contains(f[1], "security") && strings.Contains(strings.Join(f[2:], " "), "main") {
					return f[0], keyring, nil
				}
			}
		}
	}
	return "", "", errors.New("no Debian archive in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources: the test bed fetches other HAProxy releases from the system's Debian mirror")
}

// deb822 reads one stanza of a .sources file into lower-case keys.
func deb822(stanza string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(stanza, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if ok && !strings.HasPrefix(k, " ") {
			out[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return out
}

// aptState is an apt configuration of its own: one suite's sources,
// lists and package cache under a folder, apart from the system's.
type aptState struct {
	opts []string
}

func newAptState(dir string, rel HAProxyRelease, mirror, keyring string) (*aptState, error) {
	for _, d := range []string{"lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("apt state dir: %w", err)
		}
	}
	// An empty dpkg status: what the system has installed must not be
	// taken for the suite's candidate.
	status := filepath.Join(dir, "status")
	if err := os.WriteFile(status, nil, 0o644); err != nil {
		return nil, fmt.Errorf("apt status: %w", err)
	}
	sources := filepath.Join(dir, "sources.list")
	var lines strings.Builder
	for _, suite := range []string{rel.Suite, rel.Beside} {
		if suite != "" {
			fmt.Fprintf(&lines, "deb [signed-by=%s] %s %s main\n", keyring, mirror, suite)
		}
	}
	if err := os.WriteFile(sources, []byte(lines.String()), 0o644); err != nil {
		return nil, fmt.Errorf("apt sources: %w", err)
	}
	return &aptState{opts: []string{
		// Suite's packages first, over Beside's (experimental is
		// otherwise never a candidate).
		"-o", "APT::Default-Release=" + rel.Suite,
		"-o", "Dir::Etc::sourcelist=" + sources,
		"-o", "Dir::Etc::sourceparts=-",
		"-o", "Dir::State::status=" + status,
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		// The folder belongs to whoever runs the tests, not to apt's
		// sandbox user.
		"-o", "APT::Sandbox::User=" + currentUser(),
		"-o", "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false",
		"-q",
	}}, nil
}

// currentUser names the user the tests run as, for apt's sandbox.
func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

func (a *aptState) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	return a.runIn(ctx, "", prog, args...)
}

func (a *aptState) runIn(ctx context.Context, dir, prog string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, prog, append(slices.Clone(a.opts), args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", prog, strings.Join(args, " "), err, tail(stderr.Bytes(), 1500))
	}
	return out, nil
}

// libraryClosure returns pkg and every library package it needs, read
// from apt-cache depends --recurse: the edges to packages named lib* or
// zlib*, followed from pkg (adduser, lsb-base and their like are not
// needed to run the binary).
func (a *aptState) libraryClosure(ctx context.Context, pkg string) ([]string, error) {
	out, err := a.run(ctx, "apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
		"--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", pkg)
	if err != nil {
		return nil, err
	}
	deps := parseDepends(out)
	if _, ok := deps[pkg]; !ok {
		return nil, fmt.Errorf("apt-cache depends %s: no such package in the suite", pkg)
	}
	seen := map[string]bool{pkg: true}
	queue := []string{pkg}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, d := range deps[p] {
			if !seen[d] && (strings.HasPrefix(d, "lib") || strings.HasPrefix(d, "zlib")) {
				seen[d] = true
				queue = append(queue, d)
			}
		}
	}
	out2 := make([]string, 0, len(seen))
	for p := range seen {
		out2 = append(out2, p)
	}
	sort.Strings(out2)
	return out2, nil
}

// parseDepends reads apt-cache depends --recurse output: a package name
// at the start of a line, then its "  Depends: x" and "  PreDepends: x"
// lines. Of alternatives ("|Depends: a" then "Depends: b") the first is
// taken; virtual packages ("<x>") are left out.
func parseDepends(out []byte) map[string][]string {
	deps := map[string][]string{}
	cur := ""
	inAlt := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if line[0] != ' ' {
			cur = strings.TrimSpace(line)
			if _, ok := deps[cur]; !ok {
				deps[cur] = nil
			}
			inAlt = false
			continue
		}
		t := strings.TrimSpace(line)
		alt := strings.HasPrefix(t, "|")
		t = strings.TrimPrefix(t, "|")
		kind, name, ok := strings.Cut(t, ": ")
		if !ok || (kind != "Depends" && kind != "PreDepends") {
			continue
		}
		skip := inAlt // a later alternative of a group already taken
		inAlt = alt
		if skip || strings.HasPrefix(name, "<") {
			continue
		}
		deps[cur] = append(deps[cur], name)
	}
	return deps
}

func resetDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.MkdirAll(dir, 0o755)
}

// relativeLinks rewrites every absolute symbolic link under root to point
// inside root: Debian's packages link to the host's paths.
func relativeLinks(root string) error {
	return filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.Mode()&os.ModeSymlink == 0 {
			return err
		}
		target, err := os.Readlink(path)
		if err != nil || !filepath.IsAbs(target) {
			return err
		}
		rel, err := filepath.Rel(filepath.Dir(path), filepath.Join(root, target))
		if err != nil {
			return err
		}
		if err := os.Remove(path); err != nil {
			return err
		}
		return os.Symlink(rel, path)
	})
}

// relocate makes root/usr/sbin/haproxy load root's loader and libraries:
// its interpreter and its DT_RPATH (which, unlike DT_RUNPATH, also serves
// the libraries it loads) are rewritten. It then checks that every
// library the loader resolves lies under root.
func relocate(ctx context.Context, patchelf, root string) error {
	bin := filepath.Join(root, "usr", "sbin", "haproxy")
	var libDirs []string
	for _, d := range []string{"usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"} {
		if st, err := os.Stat(filepath.Join(root, d)); err == nil && st.IsDir() {
			libDirs = append(libDirs, filepath.Join(root, d))
		}
	}
	loader := ""
	for _, d := range libDirs {
		if _, err := os.Stat(filepath.Join(d, "ld-linux-x86-64.so.2")); err == nil {
			loader = filepath.Join(d, "ld-linux-x86-64.so.2")
			break
		}
	}
	if loader == "" {
		return fmt.Errorf("no ld-linux-x86-64.so.2 under %s (is libc6 among the packages?)", root)
	}
	out, err := exec.CommandContext(ctx, patchelf, "--set-interpreter", loader,
		"--force-rpath", "--set-rpath", strings.Join(libDirs, ":"), bin).CombinedOutput()
	if err != nil {
		return fmt.Errorf("patchelf %s: %w: %s", bin, err, tail(out, 500))
	}
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "LD_TRACE_LOADED_OBJECTS=1")
	out, err = cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("listing the libraries of %s: %w: %s", bin, err, tail(out, 1000))
	}
	return checkLibraries(out, root)
}

// checkLibraries reads the loader's list of libraries ("libc.so.6 =>
// /path (0x...)") and fails on one not found or outside root.
func checkLibraries(list []byte, root string) error {
	var bad []string
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		_, rest, ok := strings.Cut(sc.Text(), "=>")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 || f[0] == "not" || !strings.HasPrefix(f[0], root+"/") {
			bad = append(bad, strings.TrimSpace(sc.Text()))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("libraries not found under %s: %s", root, strings.Join(bad, "; "))
	}
	return nil
}
