//go:build !unix

package plugin

import "io/fs"

// fileOwner reports no owner: files have no uid and gid here (Windows), and
// the docker CLI keeps none either.
func fileOwner(fs.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }
