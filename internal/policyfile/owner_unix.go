//go:build unix

package policyfile

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// ownedByOther says who owns fi when that is neither the user nor root.
func ownedByOther(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	if uid := int(st.Uid); uid != 0 && uid != os.Geteuid() {
		return fmt.Sprintf("owned by another user (uid %d)", uid)
	}
	return ""
}

// writableByOthers says how others can write fi: everyone, or a group
// that is not the user's own.
func writableByOthers(fi fs.FileInfo) string {
	mode := fi.Mode().Perm()
	if mode&0o002 != 0 {
		return "writable by others"
	}
	if mode&0o020 != 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Gid) != os.Getegid() {
			return fmt.Sprintf("writable by others (group %d)", st.Gid)
		}
	}
	return ""
}

// sameFilesystem reports whether a and b are on one filesystem.
func sameFilesystem(a, b string) bool {
	var sa, sb syscall.Stat_t
	if syscall.Stat(a, &sa) != nil || syscall.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}
