//go:build !unix

package dockerconfig

import "io/fs"

// FileOwner reports no owner: files have no uid and gid here (Windows), and
// the docker CLI keeps none either.
func FileOwner(fs.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }
