module github.com/hap-monitor/hap-monitor

go 1.26.0

require github.com/influxdata/telegraf v1.39.3

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/BurntSushi/toml v1.6.0 // indirect
	github.com/gobwas/glob v0.2.3 // indirect
	github.com/influxdata/line-protocol/v2 v2.2.1 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	go.step.sm/crypto v0.87.0 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)
