package packaging

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// arch is one of the release's architectures, as Go, Debian and RPM name
// it.
type arch struct {
	goarch, deb, rpm string
	machine          elf.Machine
}

var arches = []arch{
	{"amd64", "amd64", "x86_64", elf.EM_X86_64},
	{"arm64", "arm64", "aarch64", elf.EM_AARCH64},
}

// maxBinarySize bounds the linux/amd64 binary, in bytes.
const maxBinarySize = 8_000_000

const (
	confPath    = "/etc/hap-monitor/hap-monitor.conf"
	debSocket   = "/run/haproxy/admin.sock"
	rpmSocket   = "/var/lib/haproxy/stats"
	unitPath    = "/usr/lib/systemd/system/hap-monitor.service"
	cronPath    = "/etc/cron.d/hap-monitor"
	dashboard   = "/usr/share/hap-monitor/dashboards/graphite.json"
	packageUser = "hap-monitor"
)

// entry is what a package says of one of its paths.
type entry struct{ perms, owner string }

// packaged lists every path the packages hold, with its mode and owner.
var packaged = map[string]entry{
	"/usr/bin/hap-monitor":                   {"-rwxr-xr-x", "root/root"},
	"/etc/hap-monitor/":                      {"drwxr-xr-x", "root/root"},
	confPath:                                 {"-rw-r-----", "root/hap-monitor"},
	cronPath:                                 {"-rw-r--r--", "root/root"},
	unitPath:                                 {"-rw-r--r--", "root/root"},
	"/var/lib/hap-monitor/":                  {"drwxr-x---", "hap-monitor/hap-monitor"},
	"/usr/share/doc/hap-monitor/":            {"drwxr-xr-x", "root/root"},
	"/usr/share/doc/hap-monitor/README.md":   {"-rw-r--r--", "root/root"},
	"/usr/share/doc/hap-monitor/LICENSE":     {"-rw-r--r--", "root/root"},
	"/usr/share/doc/hap-monitor/sample.conf": {"-rw-r--r--", "root/root"},
	"/usr/share/hap-monitor/":                {"drwxr-xr-x", "root/root"},
	"/usr/share/hap-monitor/dashboards/":     {"drwxr-xr-x", "root/root"},
	dashboard:                                {"-rw-r--r--", "root/root"},
}

// conffiles are the paths an upgrade leaves alone once edited.
var conffiles = []string{cronPath, confPath}

// metadata is dist/metadata.json.
type metadata struct {
	Version        string `json:"version"`
	PackageVersion string `json:"package_version"`
	Commit         string `json:"commit"`
}

func (m metadata) archive(goarch string) string {
	return fmt.Sprintf("hap-monitor_%s_linux_%s.tar.gz", m.PackageVersion, goarch)
}
func (m metadata) deb(arch string) string {
	return fmt.Sprintf("hap-monitor_%s_%s.deb", m.PackageVersion, arch)
}
func (m metadata) rpm(arch string) string {
	return fmt.Sprintf("hap-monitor-%s-1.%s.rpm", m.PackageVersion, arch)
}

var release struct {
	once sync.Once
	dir  string
	tmp  string // built here, removed by TestMain
	meta metadata
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if release.tmp != "" {
		_ = os.RemoveAll(release.tmp)
	}
	os.Exit(code)
}

// dist returns the release to check: $HAP_MONITOR_DIST when set (.ci/run
// builds it once with scripts/release), else one scripts/release builds
// now into a temp dir.
func dist(t *testing.T) (string, metadata) {
	t.Helper()
	if os.Getenv("HAP_MONITOR_DIST") == "" && testing.Short() {
		t.Skip("-short: building the release takes a while; set HAP_MONITOR_DIST to check one scripts/release built")
	}
	release.once.Do(func() { release.dir, release.meta, release.err = loadRelease() })
	if release.err != nil {
		t.Fatal(release.err)
	}
	return release.dir, release.meta
}

func loadRelease() (string, metadata, error) {
	dir := os.Getenv("HAP_MONITOR_DIST")
	if dir == "" {
		tmp, err := os.MkdirTemp("", "hap-monitor-dist-")
		if err != nil {
			return "", metadata{}, err
		}
		release.tmp = tmp
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join("..", "scripts", "release"))
		cmd.Env = append(os.Environ(), "HAP_MONITOR_DIST="+tmp)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", metadata{}, fmt.Errorf("scripts/release: %v\n%s", err, out)
		}
		dir = tmp
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", metadata{}, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "metadata.json"))
	if err != nil {
		return "", metadata{}, fmt.Errorf("%v (HAP_MONITOR_DIST=%s: is it scripts/release's output?)", err, dir)
	}
	var m metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return "", metadata{}, fmt.Errorf("metadata.json: %w", err)
	}
	if m.Version == "" || m.PackageVersion == "" {
		return "", metadata{}, fmt.Errorf("metadata.json names no version: %s", b)
	}
	return dir, m, nil
}

// needTool skips t when a program is missing, saying what installs it.
func needTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed (apt-get install %s): this check needs it", name, pkg)
	}
}

// run runs a command and returns its stdout, stderr and exit status; it
// fails t if the command cannot be started or takes over a minute.
func run(t *testing.T, stdin string, name string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s %s: timed out\nstderr: %s", name, strings.Join(args, " "), stderr.String())
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", name, err)
	}
	return stdout.String(), stderr.String(), 0
}

// must runs a command that has to succeed and returns its stdout.
func must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, errOut, code := run(t, "", name, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit status %d\n%s", name, strings.Join(args, " "), code, errOut)
	}
	return out
}

func TestChecksums(t *testing.T) {
	dir, meta := dist(t)
	var want []string
	for _, a := range arches {
		want = append(want, meta.archive(a.goarch), meta.deb(a.deb), meta.rpm(a.rpm))
	}
	f, err := os.Open(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var listed []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS: bad line %q", sc.Text())
		}
		listed = append(listed, name)
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("SHA256SUMS lists %s: %v", name, err)
			continue
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: sha256 %x, SHA256SUMS says %s", name, got, sum)
		}
	}
	slices.Sort(want)
	slices.Sort(listed)
	if !slices.Equal(listed, want) {
		t.Errorf("SHA256SUMS lists %q, want %q", listed, want)
	}
}

func TestArchives(t *testing.T) {
	dir, meta := dist(t)
	for _, a := range arches {
		t.Run(a.goarch, func(t *testing.T) {
			top := strings.TrimSuffix(meta.archive(a.goarch), ".tar.gz") + "/"
			files := readArchive(t, filepath.Join(dir, meta.archive(a.goarch)), top)
			var names []string
			for n := range files {
				names = append(names, n)
			}
			slices.Sort(names)
			if want := []string{"LICENSE", "README.md", "hap-monitor", "sample.conf"}; !slices.Equal(names, want) {
				t.Fatalf("%s holds %q, want %q", top, names, want)
			}
			for _, doc := range []string{"LICENSE", "README.md", "sample.conf"} {
				src, err := os.ReadFile(filepath.Join("..", doc))
				if err != nil {
					t.Fatal(err)
				}
				// .ci/run builds from the commit it tests; a tree being
				// edited may have moved on since.
				if !bytes.Equal(files[doc], src) && os.Getenv("HAP_MONITOR_DIST") == "" {
					t.Errorf("%s differs from the checkout's", doc)
				}
			}
			bin := files["hap-monitor"]
			checkStaticBinary(t, bin, a.machine)
			if a.goarch == "amd64" {
				t.Logf("linux/amd64 binary: %d bytes (%.2f MiB)", len(bin), float64(len(bin))/(1<<20))
				if len(bin) >= maxBinarySize {
					t.Errorf("linux/amd64 binary is %d bytes, want under %d", len(bin), maxBinarySize)
				}
			}
		})
	}
}

// readArchive reads a .tar.gz whose every entry is under top, owned by
// root, and returns its files by name under top.
func readArchive(t *testing.T, path, top string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: owner %d:%d, want 0:0", h.Name, h.Uid, h.Gid)
		}
		if h.Name == top && h.Typeflag == tar.TypeDir {
			continue
		}
		name, ok := strings.CutPrefix(h.Name, top)
		if !ok || h.Typeflag != tar.TypeReg {
			t.Errorf("unexpected entry %s (type %c)", h.Name, h.Typeflag)
			continue
		}
		wantMode := int64(0o644)
		if name == "hap-monitor" {
			wantMode = 0o755
		}
		if h.Mode != wantMode {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, wantMode)
		}
		if files[name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// checkStaticBinary checks bin is a stripped, statically linked ELF
// executable for machine.
func checkStaticBinary(t *testing.T, bin []byte, machine elf.Machine) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("binary: %v", err)
	}
	defer func() { _ = f.Close() }()
	if f.Machine != machine {
		t.Errorf("binary is for %v, want %v", f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has a %v program header: not statically linked", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary needs %q: not statically linked", libs)
	}
	for _, s := range []string{".symtab", ".debug_info"} {
		if f.Section(s) != nil {
			t.Errorf("binary has %s: not built with -ldflags \"-s -w\"", s)
		}
	}
}

func TestDeb(t *testing.T) {
	needTool(t, "dpkg-deb", "dpkg")
	dir, meta := dist(t)
	for _, a := range arches {
		t.Run(a.deb, func(t *testing.T) {
			deb := filepath.Join(dir, meta.deb(a.deb))
			if info := must(t, "dpkg-deb", "-I", deb); !strings.Contains(info, "conffiles") {
				t.Errorf("dpkg-deb -I: no conffiles in the control archive:\n%s", info)
			}
			fields := map[string]string{}
			for _, l := range strings.Split(must(t, "dpkg-deb", "-f", deb, "Package", "Version", "Architecture"), "\n") {
				if k, v, ok := strings.Cut(l, ": "); ok {
					fields[k] = v
				}
			}
			want := map[string]string{"Package": "hap-monitor", "Version": meta.PackageVersion, "Architecture": a.deb}
			for k, v := range want {
				if fields[k] != v {
					t.Errorf("%s: %s %q, want %q", meta.deb(a.deb), k, fields[k], v)
				}
			}

			got := map[string]entry{}
			for _, l := range strings.Split(strings.TrimSpace(must(t, "dpkg-deb", "-c", deb)), "\n") {
				f := strings.Fields(l)
				if len(f) != 6 {
					t.Fatalf("dpkg-deb -c: unexpected line %q", l)
				}
				got[strings.TrimPrefix(f[5], ".")] = entry{f[0], f[1]}
			}
			checkEntries(t, got, true)

			ctl := t.TempDir()
			must(t, "dpkg-deb", "-e", deb, ctl)
			b, err := os.ReadFile(filepath.Join(ctl, "conffiles"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Fields(string(b)); !slices.Equal(got, conffiles) {
				t.Errorf("conffiles %q, want %q", got, conffiles)
			}
			for script, src := range map[string]string{"preinst": "preinstall.sh", "postinst": "postinstall.sh", "prerm": "preremove.sh", "postrm": "postremove.sh"} {
				path := filepath.Join(ctl, script)
				st, err := os.Stat(path)
				if err != nil {
					t.Errorf("no %s: %v", script, err)
					continue
				}
				if st.Mode()&0o111 == 0 {
					t.Errorf("%s is not executable", script)
				}
				if _, errOut, code := run(t, "", "sh", "-n", path); code != 0 {
					t.Errorf("sh -n %s: %s", script, errOut)
				}
				checkSameAsSource(t, path, filepath.Join("scripts", src))
			}
		})
	}
}

// checkEntries checks a package's paths, modes and owners against
// packaged. Packages may also list the parent directories of what they
// install (dpkg does), which must then be root's and world-readable.
func checkEntries(t *testing.T, got map[string]entry, parents bool) {
	t.Helper()
	for path, want := range packaged {
		if g, ok := got[path]; !ok {
			t.Errorf("%s is missing", path)
		} else if g != want {
			t.Errorf("%s: %s %s, want %s %s", path, g.perms, g.owner, want.perms, want.owner)
		}
	}
	for path, g := range got {
		if _, ok := packaged[path]; ok {
			continue
		}
		if !parents || !strings.HasSuffix(path, "/") || g != (entry{"drwxr-xr-x", "root/root"}) {
			t.Errorf("unexpected %s (%s %s)", path, g.perms, g.owner)
		}
	}
}

// checkSameAsSource checks a file a package holds is the checkout's
// packaging/src, unless the release was built elsewhere.
func checkSameAsSource(t *testing.T, path, src string) {
	t.Helper()
	if os.Getenv("HAP_MONITOR_DIST") != "" {
		return
	}
	a, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s differs from packaging/%s", filepath.Base(path), src)
	}
}

func TestRPM(t *testing.T) {
	needTool(t, "rpm", "rpm")
	dir, meta := dist(t)
	for _, a := range arches {
		t.Run(a.rpm, func(t *testing.T) {
			rpm := filepath.Join(dir, meta.rpm(a.rpm))
			id := strings.TrimSpace(must(t, "rpm", "-qp", "--qf", `%{NAME}|%{VERSION}|%{RELEASE}|%{ARCH}\n`, rpm))
			if want := "hap-monitor|" + meta.PackageVersion + "|1|" + a.rpm; id != want {
				t.Errorf("rpm -qp: %s, want %s", id, want)
			}
			got := map[string]entry{}
			list := must(t, "rpm", "-qp", "--qf", `[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILENAMES}\n]`, rpm)
			for _, l := range strings.Split(strings.TrimSpace(list), "\n") {
				f := strings.Fields(l)
				if len(f) != 3 {
					t.Fatalf("rpm -qp: unexpected line %q", l)
				}
				if strings.HasPrefix(f[0], "d") {
					f[2] += "/"
				}
				got[f[2]] = entry{f[0], f[1]}
			}
			checkEntries(t, got, false)
			if lines := strings.Fields(must(t, "rpm", "-qlp", rpm)); len(lines) != len(packaged) {
				t.Errorf("rpm -qlp lists %d paths, want %d: %q", len(lines), len(packaged), lines)
			}
			if cfg := strings.Fields(must(t, "rpm", "-qp", "--configfiles", rpm)); !slices.Equal(cfg, conffiles) {
				t.Errorf("rpm --configfiles: %q, want %q", cfg, conffiles)
			}
			scripts := must(t, "rpm", "-qp", "--scripts", rpm)
			for _, s := range []string{"preinstall", "postinstall", "preuninstall", "postuninstall"} {
				if !strings.Contains(scripts, s+" scriptlet (using /bin/sh)") {
					t.Errorf("rpm --scripts: no %s scriptlet:\n%s", s, scripts)
				}
			}

			// RHEL's haproxy opens its stats socket at its own path.
			// (rpm2cpio exits 1 on nfpm's packages: their header gives the
			// files' size as the archive's; rpm2archive does not mind.)
			if _, err := exec.LookPath("rpm2archive"); err != nil {
				t.Skip("rpm2archive is not installed (apt-get install rpm2cpio): the config inside is not checked")
			}
			payload, errOut, code := run(t, "", "sh", "-c", `rpm2archive - <"$1"`, "sh", rpm)
			if code != 0 {
				t.Fatalf("rpm2archive: exit status %d\n%s", code, errOut)
			}
			conf, err := fileInTarGz(strings.NewReader(payload), "."+confPath)
			if err != nil {
				t.Fatalf("rpm payload: %v", err)
			}
			checkShippedConfig(t, string(conf), rpmSocket)
		})
	}
}

// fileInTarGz returns the contents of the file name in a .tar.gz.
func fileInTarGz(r io.Reader, name string) ([]byte, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("no %s", name)
		}
		if err != nil {
			return nil, err
		}
		if h.Name == name {
			return io.ReadAll(tr)
		}
	}
}

var outputSection = regexp.MustCompile(`(?m)^\s*\[\[\s*outputs\.`)

// checkShippedConfig checks the packaged config reads socket and sends
// nowhere until its output is uncommented.
func checkShippedConfig(t *testing.T, conf, socket string) {
	t.Helper()
	if want := `  servers = ["` + socket + `"]`; !strings.Contains(conf, "\n"+want+"\n") {
		t.Errorf("the packaged config has no line %s", want)
	}
	if outputSection.MatchString(conf) {
		t.Errorf("the packaged config has an output section: a fresh install would send somewhere")
	}
	if !strings.Contains(conf, "\n# [[outputs.graphite_statsd]]\n") {
		t.Errorf("the packaged config has no commented [[outputs.graphite_statsd]] to uncomment")
	}
}

// uncommentOutput does what the packaged config tells its reader to: it
// uncomments everything from "# [[outputs.graphite_statsd]]" on.
func uncommentOutput(conf string) string {
	lines := strings.Split(conf, "\n")
	in := false
	for i, l := range lines {
		in = in || l == "# [[outputs.graphite_statsd]]"
		if in {
			lines[i] = strings.TrimPrefix(l, "# ")
		}
	}
	return strings.Join(lines, "\n")
}

// execCondition returns the shell script of the unit's ExecCondition=, as
// systemd hands it to /bin/sh -c.
func execCondition(t *testing.T, unit string) string {
	t.Helper()
	for _, l := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(l, "ExecCondition=/bin/sh -c '"); ok {
			if v, ok = strings.CutSuffix(v, "'"); ok && !strings.Contains(v, "'") {
				return strings.ReplaceAll(v, "$$", "$")
			}
		}
	}
	t.Fatalf("the unit has no ExecCondition=/bin/sh -c '...' line")
	return ""
}

// TestPackagedService unpacks this machine's .deb and runs what it holds:
// the binary, with the packaged config pointed at a real HAProxy, as the
// service would run it before and after its output is set up; and the
// unit, through systemd-analyze.
func TestPackagedService(t *testing.T) {
	needTool(t, "dpkg-deb", "dpkg")
	dir, meta := dist(t)
	i := slices.IndexFunc(arches, func(a arch) bool { return a.goarch == runtime.GOARCH })
	if i < 0 {
		t.Skipf("no package for this machine's %s", runtime.GOARCH)
	}
	root := t.TempDir()
	must(t, "dpkg-deb", "-x", filepath.Join(dir, meta.deb(arches[i].deb)), root)
	bin := filepath.Join(root, "usr/bin/hap-monitor")
	b, err := os.ReadFile(filepath.Join(root, confPath))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	b, err = os.ReadFile(filepath.Join(root, unitPath))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	checkShippedConfig(t, conf, debSocket)
	checkSameAsSource(t, filepath.Join(root, unitPath), "hap-monitor.service")
	checkSameAsSource(t, filepath.Join(root, cronPath), "hap-monitor.cron")
	checkSameAsSource(t, filepath.Join(root, confPath), "hap-monitor.conf")
	checkSameAsSource(t, filepath.Join(root, dashboard), "../dashboards/graphite.json")
	for _, want := range []string{
		"ExecStart=/usr/bin/hap-monitor -config " + confPath + "\n",
		"User=" + packageUser + "\n",
		"StateDirectory=hap-monitor\n",
		"Restart=on-failure\n",
		"NoNewPrivileges=yes\n",
		"ProtectSystem=strict\n",
		"ProtectHome=yes\n",
	} {
		if !strings.Contains(unit, "\n"+want) {
			t.Errorf("the unit has no line %q", strings.TrimSpace(want))
		}
	}

	t.Run("version", func(t *testing.T) {
		out := must(t, bin, "-version")
		if want := "hap-monitor " + meta.Version + "\n"; out != want {
			t.Errorf("-version says %q, want %q", out, want)
		}
	})

	h := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	tmp := t.TempDir()
	local := strings.Replace(conf, `servers = ["`+debSocket+`"]`, `servers = ["`+h.UserSocket+`"]`, 1)
	localPath := filepath.Join(tmp, "hap-monitor.conf")
	if err := os.WriteFile(localPath, []byte(local), 0o600); err != nil {
		t.Fatal(err)
	}
	condition := execCondition(t, unit)
	checkCondition := func(t *testing.T, path string) (string, int) {
		t.Helper()
		_, errOut, code := run(t, "", "sh", "-c", strings.ReplaceAll(condition, confPath, path))
		return errOut, code
	}

	t.Run("test", func(t *testing.T) {
		out, errOut, code := run(t, "", bin, "-config", localPath, "-test")
		if code != 0 {
			t.Fatalf("-test: exit status %d\n%s", code, errOut)
		}
		for _, m := range []string{"haproxy,", "haproxy_info,"} {
			if !strings.Contains(out, "\n"+m) && !strings.HasPrefix(out, m) {
				t.Errorf("-test printed no %s line:\n%s", strings.TrimSuffix(m, ","), out)
			}
		}
	})

	t.Run("fresh install: skipped until configured", func(t *testing.T) {
		errOut, code := checkCondition(t, localPath)
		if code != 1 || !strings.Contains(errOut, "no [[outputs.graphite_statsd]] section") {
			t.Errorf("ExecCondition on the packaged config: exit status %d (want 1: skip), stderr %q", code, errOut)
		}
		if _, code := checkCondition(t, filepath.Join(tmp, "missing.conf")); code != 0 {
			t.Errorf("ExecCondition on a missing config: exit status %d, want 0 (hap-monitor says what is wrong)", code)
		}
	})

	t.Run("configured: delivers to Graphite, spools", func(t *testing.T) {
		sink := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{})
		spool := filepath.Join(tmp, "spool")
		configured := uncommentOutput(local)
		for old, repl := range map[string]string{
			`servers = ["graphite.example.org:2003"]`:  `servers = ["` + sink.Addr + `"]`,
			`spool_dir = "/var/lib/hap-monitor/spool"`: `spool_dir = "` + spool + `"`,
		} {
			if !strings.Contains(configured, old) {
				t.Fatalf("the packaged output section has no %s", old)
			}
			configured = strings.Replace(configured, old, repl, 1)
		}
		path := filepath.Join(tmp, "configured.conf")
		if err := os.WriteFile(path, []byte(configured), 0o600); err != nil {
			t.Fatal(err)
		}
		if errOut, code := checkCondition(t, path); code != 0 {
			t.Fatalf("ExecCondition on the configured config: exit status %d, %s", code, errOut)
		}
		if _, errOut, code := run(t, "", bin, "-config", path, "-once"); code != 0 {
			t.Fatalf("-once: exit status %d\n%s", code, errOut)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sink.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		lines := sink.Lines()
		want := regexp.MustCompile(`^haproxy\.[^.]+\.1\.app_v1\.web-1\.\S+ \S+ \d+$`)
		if !slices.ContainsFunc(lines, want.MatchString) {
			t.Errorf("Graphite got %d lines, none like %s: %q", len(lines), want, lines[:min(len(lines), 10)])
		}
		if st, err := os.Stat(spool); err != nil || !st.IsDir() {
			t.Errorf("spool_dir %s was not set up: %v", spool, err)
		}
	})

	t.Run("systemd-analyze", func(t *testing.T) {
		needTool(t, "systemd-analyze", "systemd")
		// verify wants ExecStart's binary to exist: the unpacked one.
		local := strings.Replace(unit, "ExecStart=/usr/bin/hap-monitor ", "ExecStart="+bin+" ", 1)
		path := filepath.Join(t.TempDir(), "hap-monitor.service")
		if err := os.WriteFile(path, []byte(local), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := run(t, "", "systemd-analyze", "verify", path)
		var ours []string
		for _, l := range strings.Split(out+errOut, "\n") {
			if strings.Contains(l, "hap-monitor") {
				ours = append(ours, l)
			}
		}
		if code != 0 || len(ours) > 0 {
			t.Errorf("systemd-analyze verify: exit status %d\n%s", code, strings.Join(ours, "\n"))
		}
		// Exposure 2.0 at most ("OK"), as systemd-analyze security rates it.
		out, errOut, code = run(t, "", "systemd-analyze", "security", "--offline=true", "--threshold=20", "--no-pager", path)
		if i := strings.Index(out, "Overall exposure level"); i >= 0 {
			line, _, _ := strings.Cut(out[i:], "\n")
			t.Log(line)
		}
		if code != 0 {
			t.Errorf("systemd-analyze security: exit status %d (exposure above 2.0?)\n%s%s", code, out, errOut)
		}
	})
}
