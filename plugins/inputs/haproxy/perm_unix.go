//go:build unix

package haproxy

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// permissionHint explains a "permission denied" on the unix socket path:
// the mode, owner and group of what denies (the socket, or a directory on
// its path the user may not search), the user hap-monitor runs as, and
// what to change.
func permissionHint(path string) string {
	uid := os.Geteuid()
	me := fmt.Sprintf("user %s (uid %d)", userName(uid), uid)
	blocker, fi := permissionBlocker(path)
	if fi == nil {
		return fmt.Sprintf("hap-monitor runs as %s; run it as a member of the group that owns %s", me, path)
	}
	what := "socket " + blocker
	if fi.IsDir() {
		what = "directory " + blocker
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Sprintf("%s is mode %03o; hap-monitor runs as %s", what, fi.Mode().Perm(), me)
	}
	mode := fi.Mode().Perm()
	owner, group := userName(int(st.Uid)), groupName(int(st.Gid))
	desc := fmt.Sprintf("%s is mode %03o, owner %s, group %s; hap-monitor runs as %s", what, mode, owner, group, me)
	if fi.IsDir() {
		if uid == int(st.Uid) {
			return fmt.Sprintf("%s, its owner, but the mode does not let the owner search the directory: chmod u+x %s", desc, blocker)
		}
		if inGroup(int(st.Gid)) {
			return fmt.Sprintf("%s, a member of group %s, but the mode does not let that group search the directory: chmod g+x %s", desc, group, blocker)
		}
		return fmt.Sprintf("%s: run hap-monitor as a member of group %s and let that group search the directory (chmod g+x %s), or put HAProxy's \"stats socket\" in a directory it can reach", desc, group, blocker)
	}
	line := fmt.Sprintf("HAProxy's \"stats socket %s\" line", path)
	switch {
	case uid == int(st.Uid):
		return fmt.Sprintf("%s, its owner, but the mode gives the owner no write permission: set \"mode 600\" (or 660 with \"group\") on %s", desc, line)
	case inGroup(int(st.Gid)):
		return fmt.Sprintf("%s, a member of group %s, but the mode gives that group no write permission: set \"mode 660\" on %s", desc, group, line)
	}
	return fmt.Sprintf("%s: run hap-monitor as a member of group %s, or change \"mode\"/\"group\" on %s so that this user may write to the socket", desc, group, line)
}

// permissionBlocker finds what denies access to path: the socket itself
// when it can be looked at, else the nearest directory above it that can
// (the one whose search permission is missing), with its file info; fi is
// nil when nothing can be looked at.
func permissionBlocker(path string) (string, fs.FileInfo) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	if fi, err := os.Stat(abs); err == nil {
		return abs, fi
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil {
			return d, fi
		}
		if d == filepath.Dir(d) {
			return "", nil
		}
	}
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

func groupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return strconv.Itoa(gid)
}

// inGroup reports whether this process has gid as its group or one of
// its supplementary groups.
func inGroup(gid int) bool {
	if os.Getegid() == gid {
		return true
	}
	groups, err := os.Getgroups()
	return err == nil && slices.Contains(groups, gid)
}
