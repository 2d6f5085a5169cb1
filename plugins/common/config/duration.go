package config

import (
	"fmt"
	"strconv"
	"time"
)

// Duration is a time.Duration that decodes from TOML the way Telegraf's
// options do: a string such as "5s" or "1m30s", or a number of seconds.
type Duration time.Duration

// UnmarshalTOML implements toml.Unmarshaler.
func (d *Duration) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		return d.UnmarshalText([]byte(v))
	case int64:
		*d = Duration(time.Duration(v) * time.Second)
		return nil
	case float64:
		*d = Duration(v * float64(time.Second))
		return nil
	default:
		return fmt.Errorf("duration must be a string such as \"5s\" or a number of seconds, not %T", v)
	}
}

// UnmarshalText parses "5s", "250ms", "1m"; a bare number means seconds.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if s == "" {
		*d = 0
		return nil
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		*d = Duration(n * float64(time.Second))
		return nil
	}
	p, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", s, err)
	}
	*d = Duration(p)
	return nil
}

// String returns the duration as time.Duration prints it.
func (d Duration) String() string { return time.Duration(d).String() }
