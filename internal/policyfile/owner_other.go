//go:build !unix

package policyfile

import (
	"io/fs"
	"path/filepath"
)

// On systems without Unix owners and modes (Windows), discovery is bounded
// by the repository root, the home directory and the volume only.

func ownedByOther(fs.FileInfo) string     { return "" }
func writableByOthers(fs.FileInfo) string { return "" }

// sameFilesystem reports whether a and b are on one volume.
func sameFilesystem(a, b string) bool {
	return filepath.VolumeName(a) == filepath.VolumeName(b)
}
