//go:build unix

package ledger

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// writableByOthers says how a user other than this one (and root) could
// write what fi describes, or "" when none could: its owner is another
// user, or its mode lets group or others write. A directory writable by
// others is refused even with the sticky bit: others may create the ledger
// file there before this user does, and the lock file's name. The group is
// refused whichever it is: the ledger is created 0700/0600, and a group
// bit on it is someone's change.
func writableByOthers(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid := int(st.Uid); uid != 0 && uid != os.Geteuid() {
			return fmt.Sprintf("is owned by another user (uid %d)", uid)
		}
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Sprintf("is writable by group or others (mode %v)", fi.Mode())
	}
	return ""
}
