package main

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestDescribeBuild(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	const rev = "ecd828e1c2a3b4c5d6e7f8091a2b3c4d5e6f7a8b"
	for _, tc := range []struct {
		name    string
		version string
		bi      *debug.BuildInfo
		want    string
	}{
		{"release", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "v1.2.3"},
		{"release from git describe", "v1.2.3-4-gecd828e-dirty", nil, "v1.2.3-4-gecd828e-dirty"},
		{"release beats module version", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20250101000000-ecd828e1c2a3"}}, "v1.2.3"},
		{"go install @version", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3"},
		{"checkout, pseudo-version", "", &debug.BuildInfo{
			Main:     debug.Module{Version: "v0.0.0-20251129225000-ecd828e1c2a3+dirty"},
			Settings: vcs("vcs.revision", rev, "vcs.modified", "true"),
		}, "v0.0.0-20251129225000-ecd828e1c2a3+dirty"},
		{"checkout, no module version", "", &debug.BuildInfo{
			GoVersion: "go1.26.8",
			Main:      debug.Module{Version: "(devel)"},
			Settings:  vcs("vcs", "git", "vcs.revision", rev, "vcs.modified", "true"),
		}, "(devel, revision ecd828e1c2a3, modified, built with go1.26.8)"},
		{"checkout, clean tree", "", &debug.BuildInfo{
			Main:     debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.revision", rev, "vcs.modified", "false"),
		}, "(devel, revision ecd828e1c2a3)"},
		{"no VCS stamping", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "(devel, unknown revision, built with go1.26.8)"},
		{"empty module version", "", &debug.BuildInfo{}, "(devel, unknown revision)"},
		{"no build info", "", nil, "(devel, unknown revision)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describeBuild(tc.version, tc.bi); got != tc.want {
				t.Errorf("describeBuild(%q, ...) = %q, want %q", tc.version, got, tc.want)
			}
		})
	}
}

func TestBuildVersionIsNeverBareDevel(t *testing.T) {
	if v := buildVersion(); v == "(devel)" || v == "" {
		t.Fatalf("buildVersion() = %q", v)
	}
}

// TestVersionOfACheckoutBuild builds the binary as `go build` does in a
// checkout with VCS stamping on, and checks -version names HEAD.
func TestVersionOfACheckoutBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed")
	}
	head, err := exec.Command(gitBin, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	goBin, err := exec.LookPath("go") // go test puts GOROOT/bin first in PATH
	if err != nil {
		t.Fatalf("go is not in PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "hap-monitor")
	build := exec.Command(goBin, "build", "-buildvcs=true", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildvcs=true: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-version").Output()
	if err != nil {
		t.Fatalf("hap-monitor -version: %v", err)
	}
	got := strings.TrimSpace(string(out))
	if want := string(head[:12]); !strings.HasPrefix(got, "hap-monitor ") || !strings.Contains(got, want) {
		t.Errorf("-version of a checkout build says %q, want the revision %s", got, want)
	}
}
