package trustedbuilder

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/docker-trustcache/docker-trustcache/keys"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// snapshotPolicy checks the policy at src and copies it, with the key
// files and trusted root it names, into dst (made here). The builder's
// gateway reads the copy: what the builder trusts is what the policy said
// at create, whatever later happens to src (a checkout a later step of a
// CI job can write to). Files the policy names must be inside its
// directory (relative paths that do not climb out of it): the copy keeps
// the same relative layout. It returns the copy's path, its digest and
// fingerprint, and the env:// variables its keys read (the gateway needs
// them in its environment).
// The copy of the policy file itself is named name (default: src's base
// name).
func snapshotPolicy(src, dst, name string) (PolicyInfo, []string, error) {
	p, err := trustpolicy.Load(src)
	if err != nil {
		return PolicyInfo{}, nil, fmt.Errorf("policy: %w", err)
	}
	var files, envs []string
	for _, b := range p.Builders {
		for _, k := range b.Keys {
			switch keys.KindOf(k.Ref) {
			case keys.RefFile:
				files = append(files, k.Ref)
			case keys.RefEnv:
				envs = append(envs, strings.TrimPrefix(k.Ref, keys.EnvScheme))
			}
		}
	}
	if p.TrustedRoot != "" {
		files = append(files, p.TrustedRoot)
	}
	for _, f := range files {
		if filepath.IsAbs(f) || !filepath.IsLocal(f) {
			return PolicyInfo{}, nil, fmt.Errorf("policy %s names %q, outside its directory: a builder copies the policy with the files it names, relative to it; move the file next to the policy (or below) and name it relatively", src, f)
		}
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return PolicyInfo{}, nil, err
	}
	if name == "" {
		name = filepath.Base(src)
	}
	srcDir := filepath.Dir(src)
	if err := copyFile(src, filepath.Join(dst, name)); err != nil {
		return PolicyInfo{}, nil, fmt.Errorf("copying the policy: %w", err)
	}
	for _, f := range slices.Compact(files) {
		if f == name {
			return PolicyInfo{}, nil, fmt.Errorf("policy %s names %q, the name of the policy's copy", src, f)
		}
		if err := copyFile(filepath.Join(srcDir, f), filepath.Join(dst, f)); err != nil {
			return PolicyInfo{}, nil, fmt.Errorf("copying the policy: %w", err)
		}
	}
	file := filepath.Join(dst, name)
	q, err := trustpolicy.Load(file)
	if err != nil {
		return PolicyInfo{}, nil, fmt.Errorf("policy copy: %w", err)
	}
	// A file replaced between the check and the copy: refuse rather than
	// run a policy nobody checked.
	if q.Digest != p.Digest || q.Fingerprint(nil) != p.Fingerprint(nil) {
		return PolicyInfo{}, nil, fmt.Errorf("policy %s or a key it names changed while it was being copied; try again", src)
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		abs = src
	}
	return PolicyInfo{Source: abs, File: file, Digest: q.Digest, Fingerprint: q.Fingerprint(nil)}, slices.Compact(envs), nil
}

// copyFile copies a small regular file, readable by everyone (a policy
// and public keys are not secrets; the gateway runs as another user).
func copyFile(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}
