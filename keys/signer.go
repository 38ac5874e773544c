package keys

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// Option configures LoadSigner.
type Option func(*options)

type options struct {
	warn func(string)
}

// WithWarnings has LoadSigner pass each warning (a message for the user: one
// line, no trailing newline) to warn. By default warnings are dropped.
func WithWarnings(warn func(msg string)) Option {
	return func(o *options) { o.warn = warn }
}

// LoadSigner loads the encrypted private key named by ref and decrypts it
// with the password pass returns (pass is called with confirm false, and only
// once the key has been read and found to be an encrypted key; a nil pass
// means the empty password, as in cosign).
//
// ref is a file path, env://VAR (the PEM text is in the environment variable
// VAR), inline PEM text, or a KMS URI (awskms://, gcpkms://, azurekms://,
// hashivault://): signed through sigstore's KMS providers in a build with
// -tags kms, else an error wrapping ErrKMSNotSupported. A key file that group or others can read still loads,
// with a warning naming the file and its mode (see WithWarnings).
func LoadSigner(ref string, pass PasswordFunc, opts ...Option) (crypto.Signer, error) {
	o := options{warn: func(string) {}}
	for _, opt := range opts {
		opt(&o)
	}
	if isKMSRef(ref) {
		return kmsSigner(ref)
	}
	data, err := readKeyRef(ref, "")
	if err != nil {
		return nil, fmt.Errorf("loading private key: %w", err)
	}
	envelope, err := encryptedEnvelope(data)
	if err != nil {
		if errors.Is(err, errPublicKey) {
			if path, ok := keyFilePath(ref); ok && strings.HasSuffix(path, ".pub") {
				if priv := strings.TrimSuffix(path, ".pub") + ".key"; fileExists(priv) {
					err = fmt.Errorf("%w (did you mean %s?)", err, priv)
				}
			}
		}
		return nil, fmt.Errorf("private key %s: %w", describeRef(ref), err)
	}
	// Only a private key is worth a warning about who can read it (a
	// public key given by mistake is refused above, without advice to
	// chmod it).
	if path, ok := keyFilePath(ref); ok {
		if msg := modeWarning(path); msg != "" {
			o.warn(msg)
		}
	}
	var password []byte
	if pass != nil {
		password, err = pass(false)
		if err != nil {
			return nil, fmt.Errorf("private key %s: %w", describeRef(ref), err)
		}
	}
	signer, err := decryptPrivateKey(envelope, password)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", describeRef(ref), err)
	}
	return signer, nil
}

// keyFilePath returns the file a key reference that readKeyRef accepted
// names, if it names one.
func keyFilePath(ref string) (string, bool) {
	return ref, KindOf(ref) == RefFile
}

// modeWarning returns a warning when the private key file at path can be read
// by group or others, and "" otherwise (or where file modes mean nothing).
func modeWarning(path string) string {
	if runtime.GOOS == "windows" {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	perm := fi.Mode().Perm()
	if perm&0o077 == 0 {
		return ""
	}
	return fmt.Sprintf("private key file %s has mode %#o and is accessible by group or others; restrict it with chmod 600 %s", path, perm, path)
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
