// Package atomicfile writes files so that no reader sees half of one:
// Write replaces a file through a temporary file and a rename, WriteNew
// creates one that must not exist and removes it again if writing fails.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write writes data to path through a temporary file in the same
// directory and a rename, so readers see the old file or the new one.
func Write(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(mode)
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
