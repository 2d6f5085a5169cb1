package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Agent holds the [agent] table: every key of Telegraf v1.39.3's, so that
// the table "telegraf config" writes is read as it is. Those that mean
// something here keep Telegraf's meaning; the others are accepted and
// named in one debug line (see ignoredAgentKeys).
type Agent struct {
	// Interval is the default time between gathers (Telegraf's 10s).
	Interval Duration `toml:"interval"`
	// RoundInterval aligns gathers on multiples of the interval (:00, :10,
	// ...); Telegraf's default is true.
	RoundInterval *bool `toml:"round_interval"`
	// Precision rounds gathered timestamps; 0 means by the interval, at
	// most 1s, as in Telegraf.
	Precision Duration `toml:"precision"`
	// CollectionJitter delays each gather by a random time up to it.
	CollectionJitter Duration `toml:"collection_jitter"`
	// CollectionOffset shifts every gather by this much.
	CollectionOffset Duration `toml:"collection_offset"`
	// FlushInterval is how long metrics read by the execd output may wait
	// for their batch to fill, and how often an output holding undelivered
	// metrics retries.
	FlushInterval Duration `toml:"flush_interval"`
	// FlushJitter adds a random time up to it to each flush_interval.
	FlushJitter Duration `toml:"flush_jitter"`
	// MetricBatchSize is the most metrics handed to an output at once.
	MetricBatchSize int `toml:"metric_batch_size"`
	// MetricBufferLimit is each output's default metric_buffer_limit.
	MetricBufferLimit int `toml:"metric_buffer_limit"`
	// Hostname overrides the host tag; empty means the short host name.
	Hostname string `toml:"hostname"`
	// OmitHostname leaves the host tag out (Telegraf adds its own under execd).
	OmitHostname bool `toml:"omit_hostname"`
	// Debug logs debug messages; Quiet logs errors only.
	Debug bool `toml:"debug"`
	Quiet bool `toml:"quiet"`
	// Logfile, if set, receives the log lines instead of stderr.
	Logfile string `toml:"logfile"`
	// AlwaysIncludeLocalTags and AlwaysIncludeGlobalTags keep a section's
	// tags and the global tags through taginclude and tagexclude.
	AlwaysIncludeLocalTags  bool `toml:"always_include_local_tags"`
	AlwaysIncludeGlobalTags bool `toml:"always_include_global_tags"`

	// Accepted for Telegraf's sake; they mean nothing here.
	LogTarget                      string   `toml:"logtarget"`
	LogFormat                      string   `toml:"logformat"`
	StructuredLogMessageKey        string   `toml:"structured_log_message_key"`
	LogfileRotationInterval        Duration `toml:"logfile_rotation_interval"`
	LogfileRotationMaxSize         Size     `toml:"logfile_rotation_max_size"`
	LogfileRotationMaxArchives     int      `toml:"logfile_rotation_max_archives"`
	LogWithTimezone                string   `toml:"log_with_timezone"`
	SnmpTranslator                 string   `toml:"snmp_translator"`
	Statefile                      string   `toml:"statefile"`
	SkipProcessorsAfterAggregators *bool    `toml:"skip_processors_after_aggregators"`
	ConfigURLRetryAttempts         int      `toml:"config_url_retry_attempts"`
	BufferStrategy                 string   `toml:"buffer_strategy"`
	BufferDirectory                string   `toml:"buffer_directory"`
	BufferDiskSync                 *bool    `toml:"buffer_disk_sync"`
}

// ignoredAgentKeys are the [agent] keys of Telegraf that have no meaning
// for hap-monitor: log rotation and format (hap-monitor writes lines in the
// form Telegraf's execd reads), processors, state, disk buffers (the
// output's spool_dir is hap-monitor's).
var ignoredAgentKeys = []string{
	"logtarget", "logformat", "structured_log_message_key",
	"logfile_rotation_interval", "logfile_rotation_max_size", "logfile_rotation_max_archives",
	"log_with_timezone", "snmp_translator", "statefile", "skip_processors_after_aggregators",
	"config_url_retry_attempts", "buffer_strategy", "buffer_directory", "buffer_disk_sync",
}

// Defaults of the [agent] options left unset, Telegraf's.
const (
	DefaultInterval        = 10 * time.Second
	DefaultMetricBatchSize = 1000
	DefaultFlushInterval   = 10 * time.Second
)

// GatherInterval returns interval, or its default.
func (a Agent) GatherInterval() time.Duration {
	if a.Interval > 0 {
		return time.Duration(a.Interval)
	}
	return DefaultInterval
}

// Round reports whether gathers are aligned on the interval.
func (a Agent) Round() bool { return a.RoundInterval == nil || *a.RoundInterval }

// BatchSize returns metric_batch_size, or its default.
func (a Agent) BatchSize() int {
	if a.MetricBatchSize > 0 {
		return a.MetricBatchSize
	}
	return DefaultMetricBatchSize
}

// Flush returns flush_interval, or its default.
func (a Agent) Flush() time.Duration {
	if a.FlushInterval > 0 {
		return time.Duration(a.FlushInterval)
	}
	return DefaultFlushInterval
}

// validate checks the [agent] options, naming the option and its line.
func (a Agent) validate(data []byte, source string) error {
	bad := func(key, msg string) error {
		return fmt.Errorf("%s:%d: [agent]: %s %s", source, keyLine(data, toml.Key{"agent", key}), key, msg)
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"interval", a.Interval}, {"precision", a.Precision}, {"collection_jitter", a.CollectionJitter},
		{"collection_offset", a.CollectionOffset}, {"flush_interval", a.FlushInterval}, {"flush_jitter", a.FlushJitter},
	} {
		if d.v < 0 {
			return bad(d.key, "must not be negative")
		}
	}
	switch {
	case a.MetricBatchSize < 0:
		return bad("metric_batch_size", "must not be negative")
	case a.MetricBufferLimit < 0:
		return bad("metric_buffer_limit", "must not be negative")
	case strings.ContainsAny(a.Hostname, " \t\n,="):
		return bad("hostname", fmt.Sprintf("%q must not hold spaces, commas or '='", a.Hostname))
	case a.Debug && a.Quiet:
		return bad("quiet", "cannot be combined with debug")
	}
	return nil
}
