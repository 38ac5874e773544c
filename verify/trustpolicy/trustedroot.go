package trustpolicy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore-go/pkg/root"
)

// The policy's trustedRoot: a sigstore trusted_root.json, loaded and checked
// with the policy so that a policy that names an unusable root never loads.

// maxTrustedRootSize bounds the trusted root file; the public-good one is
// about 20 KiB.
const maxTrustedRootSize = 4 << 20

// KeylessRoot is the policy's trusted root, loaded.
type KeylessRoot struct {
	digest string // "sha256:<hex>" of the file
	tr     *root.TrustedRoot
}

// TrustedRootDigest returns "sha256:<hex>" of the policy's trusted root
// file, or "" when the policy has none.
func (p *Policy) TrustedRootDigest() string {
	if p.Keyless == nil {
		return ""
	}
	return p.Keyless.digest
}

// TrustedRootSummary describes the policy's trusted root for explain and
// lint: how many certificate authorities, timestamp authorities,
// transparency logs and CT logs it lists. Empty without a trusted root.
func (p *Policy) TrustedRootSummary() string {
	if p.Keyless == nil {
		return ""
	}
	tr := p.Keyless.tr
	return fmt.Sprintf("%d certificate authorities, %d timestamp authorities, %d transparency logs, %d CT logs",
		len(tr.FulcioCertificateAuthorities()), len(tr.TimestampingAuthorities()), len(tr.RekorLogs()), len(tr.CTLogs()))
}

// trustedRoot reads the policy's trustedRoot field and loads the file.
func (ps *parser) trustedRoot(f field, p *Policy) {
	ref, ok := ps.str(f.value, "trustedRoot")
	if !ok {
		return
	}
	p.TrustedRoot = ref
	k, err := loadTrustedRoot(ref, ps.baseDir)
	if err != nil {
		ps.errorf(f.value, "trustedRoot", "%v", err)
		return
	}
	p.Keyless = k
}

// loadTrustedRoot reads and parses a sigstore trusted_root.json, relative
// to baseDir.
func loadTrustedRoot(ref, baseDir string) (*KeylessRoot, error) {
	if ref == "" {
		return nil, errors.New("empty: want the path of a sigstore trusted_root.json")
	}
	path := ref
	if !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("trusted root %q: %w", ref, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("trusted root %q: %s is not a regular file", ref, path)
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trusted root %q: %w", ref, err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxTrustedRootSize+1))
	if err != nil {
		return nil, fmt.Errorf("trusted root %q: %w", ref, err)
	}
	if len(data) > maxTrustedRootSize {
		return nil, fmt.Errorf("trusted root %q: larger than %d bytes", ref, maxTrustedRootSize)
	}
	tr, err := root.NewTrustedRootFromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("trusted root %q: not a sigstore trusted root: %v", ref, err)
	}
	if len(tr.FulcioCertificateAuthorities()) == 0 {
		return nil, fmt.Errorf("trusted root %q lists no certificate authority (certificateAuthorities): no keyless signature could verify", ref)
	}
	if len(tr.TimestampingAuthorities()) == 0 {
		return nil, fmt.Errorf("trusted root %q lists no timestamp authority (timestampAuthorities): no keyless signature could have a verified time (transparency log entries are not verified)", ref)
	}
	sum := sha256.Sum256(data)
	return &KeylessRoot{digest: "sha256:" + hex.EncodeToString(sum[:]), tr: tr}, nil
}

// TrustedRoot returns the parsed trusted root the verifier checks keyless
// signatures against.
func (k *KeylessRoot) TrustedRoot() *root.TrustedRoot { return k.tr }
