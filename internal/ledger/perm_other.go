//go:build !unix

package ledger

import "io/fs"

// writableByOthers is not checked where there are no unix owners and
// modes: the ledger is as safe as the user's profile directory.
func writableByOthers(fs.FileInfo) string { return "" }
