//go:build !unix

package haproxy

import (
	"fmt"
	"os/user"
)

// permissionHint explains a "permission denied" on the unix socket path
// where file ownership is not unix's: it names the user.
func permissionHint(path string) string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return fmt.Sprintf("hap-monitor runs as user %s, who may not write to %s: change its permissions or HAProxy's \"stats socket %s\" options", name, path, path)
}
