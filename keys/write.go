package keys

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker-trustcache/docker-trustcache/internal/atomicfile"
)

// File name suffixes WriteKeyPair uses, and file modes it asks for (the umask
// still applies).
const (
	PrivateKeySuffix = ".key"
	PublicKeySuffix  = ".pub"

	privateKeyMode fs.FileMode = 0o600
	publicKeyMode  fs.FileMode = 0o644
)

// WriteKeyPair writes privatePEM to dir/NAME.key (mode 0600) and publicPEM to
// dir/NAME.pub (mode 0644), and returns their paths. dir must exist; "" is the
// current directory.
//
// It never overwrites: when either file exists it writes nothing and returns
// an error naming the file that wraps fs.ErrExist. name must be non-empty,
// must not start with a dot and must not contain a path separator. If writing
// fails part way, the files it created are removed.
func WriteKeyPair(dir, name string, privatePEM, publicPEM []byte) (privPath, pubPath string, err error) {
	return writeKeyPair(dir, name, privatePEM, publicPEM, writeNewFile)
}

// writeKeyPair is WriteKeyPair with the function that creates each file
// passed in, so that a test can make the second file fail.
func writeKeyPair(dir, name string, privatePEM, publicPEM []byte, create func(path string, data []byte, mode fs.FileMode) error) (privPath, pubPath string, err error) {
	if err := checkKeyName(name); err != nil {
		return "", "", err
	}
	privPath = filepath.Join(dir, name+PrivateKeySuffix)
	pubPath = filepath.Join(dir, name+PublicKeySuffix)
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("refusing to overwrite %s: %w", p, fs.ErrExist)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", "", fmt.Errorf("checking %s: %w", p, err)
		}
	}
	if err := create(privPath, privatePEM, privateKeyMode); err != nil {
		return "", "", err
	}
	if err := create(pubPath, publicPEM, publicKeyMode); err != nil {
		if rmErr := os.Remove(privPath); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("removing %s: %w", privPath, rmErr))
		}
		return "", "", err
	}
	return privPath, pubPath, nil
}

// checkKeyName validates the NAME of NAME.key and NAME.pub.
func checkKeyName(name string) error {
	switch {
	case name == "":
		return errors.New("key name is empty")
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("key name %q starts with a dot", name)
	case strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, filepath.Separator):
		return fmt.Errorf("key name %q contains a path separator; use the directory argument for the directory", name)
	case len(name) > 128:
		return fmt.Errorf("key name is %d characters long; at most 128", len(name))
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			// The name is not quoted: it may be anything pasted by mistake.
			return fmt.Errorf("key name contains %q; use letters, digits, '.', '_' and '-'", r)
		}
	}
	return nil
}

// writeNewFile creates path, which must not exist, and writes data to it
// (atomicfile.WriteNew). On failure it removes the file it created.
func writeNewFile(path string, data []byte, mode fs.FileMode) error {
	err := atomicfile.WriteNew(path, data, mode)
	switch {
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("refusing to overwrite %s: %w", path, fs.ErrExist)
	case atomicfile.IsCreateError(err):
		return fmt.Errorf("creating %s: %w", path, err)
	}
	return err
}
