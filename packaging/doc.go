// Package packaging holds what hap-monitor's .deb and .rpm install besides
// the binary (the service, its configuration, the cron example, the
// maintainer scripts, nfpm.yaml) and the tests of the release that
// scripts/release builds from them: archives, packages, checksums, and the
// packaged binary run against a real HAProxy.
package packaging
