package main

import (
	"runtime/debug"
	"strings"
)

// describeBuild says what was built, for -version, from the version the
// release build sets (-ldflags "-X main.version=...") and the build
// information the Go toolchain records (bi, nil when there is none):
//
//   - a release: its version, as the release build set it;
//   - `go install ...@vX.Y.Z`, or a build in a checkout with VCS stamping
//     (Go 1.24+ records the tag or a pseudo-version, "+dirty" when the tree
//     was modified): the module version;
//   - a build with VCS stamping but no module version: "(devel, revision
//     R)", with ", modified" when the tree was;
//   - nothing recorded (-buildvcs=false, go test): "(devel, unknown
//     revision, built with goX.Y.Z)".
func describeBuild(version string, bi *debug.BuildInfo) string {
	if version != "" {
		return version
	}
	if bi == nil {
		return "(devel, unknown revision)"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var revision, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	var b strings.Builder
	b.WriteString("(devel, ")
	if revision == "" {
		b.WriteString("unknown revision")
	} else {
		b.WriteString("revision ")
		b.WriteString(shortRevision(revision))
		if modified == "true" {
			b.WriteString(", modified")
		}
	}
	if bi.GoVersion != "" {
		b.WriteString(", built with ")
		b.WriteString(bi.GoVersion)
	}
	b.WriteString(")")
	return b.String()
}

// shortRevision cuts a commit hash to the 12 characters Go's
// pseudo-versions use.
func shortRevision(r string) string {
	if len(r) > 12 {
		return r[:12]
	}
	return r
}

// readBuildInfo is debug.ReadBuildInfo, nil when the binary has none.
func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}
