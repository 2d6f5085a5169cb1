package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Size is a byte size as Telegraf writes it (its config.Size): a number
// of bytes, or a string such as "10MB" (10,000,000 bytes) or "10MiB"
// (10,485,760).
type Size int64

func (s *Size) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		*s = Size(v)
		return nil
	case string:
		t := strings.ToUpper(strings.TrimSpace(v))
		mult := int64(1)
		for _, u := range []struct {
			suffix string
			mult   int64
		}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
			if strings.HasSuffix(t, u.suffix) {
				t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
				break
			}
		}
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid size %q (want bytes, or e.g. \"10MB\")", v)
		}
		*s = Size(n * mult)
		return nil
	}
	return fmt.Errorf("size must be a number of bytes or a string such as \"10MB\", not %T", v)
}
