module github.com/hap-monitor/hap-monitor

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/influxdata/line-protocol/v2 v2.2.1
	github.com/influxdata/telegraf v1.39.3
)

require github.com/gobwas/glob v0.2.3 // indirect
