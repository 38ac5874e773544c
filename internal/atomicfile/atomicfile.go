// Package atomicfile writes files so that no reader sees half of one:
// Write and WriteWith replace a file through a temporary file and a
// rename; WriteNew creates one that must not exist, and removes it again if
// writing fails.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write writes data to path through a temporary file in the same
// directory and a rename, so readers see the old file or the new one; the
// file gets mode.
func Write(path string, data []byte, mode fs.FileMode) error {
	return WriteWith(path, data, func(f *os.File) error { return f.Chmod(mode) })
}

// WriteWith writes data to path as Write does, after prepare has set up the
// open temporary file (its mode, its owner: on the file, never through its
// name, which whoever can write the directory could replace). The data is
// synced before the rename; on any failure the temporary file is removed
// and path left as it was. Errors say "writing PATH".
func WriteWith(path string, data []byte, prepare func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	werr := prepare(f)
	if werr == nil {
		_, werr = f.Write(data)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, werr)
	}
	return nil
}

// WriteNew creates path, which must not exist, writes data to it and syncs
// it. When path cannot be created, the error is os.OpenFile's
// (*fs.PathError, Op "open"; errors.Is(err, fs.ErrExist) when it exists),
// for the caller to phrase; when writing fails, the file is removed and
// the error says "writing PATH".
func WriteNew(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		if rmErr := os.Remove(path); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("removing %s: %w", path, rmErr))
		}
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// IsCreateError reports whether err is WriteNew's failure to create the
// file (nothing was written), as opposed to a failure to write it.
func IsCreateError(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Op == "open"
}
