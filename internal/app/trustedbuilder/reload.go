package trustedbuilder

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Reload replaces builder name's policy with a new copy of policyFile
// (default: the file it was copied from at create) and has the gateway
// load it (SIGHUP): running builds go on. A policy that does not load,
// here or in the gateway, changes nothing: the gateway keeps the policy it
// had, the builder's copy is put back, and the error says why.
func Reload(ctx context.Context, d Docker, configDir, name, policyFile string, timeout time.Duration, progress io.Writer) (*Record, error) {
	rec, err := Load(configDir, name)
	if err != nil {
		return nil, err
	}
	if policyFile == "" {
		policyFile = rec.Policy.Source
	}
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	live := filepath.Join(rec.Dir, "policy")
	next, prev := filepath.Join(rec.Dir, ".policy-next"), filepath.Join(rec.Dir, ".policy-prev")
	for _, p := range []string{next, prev} {
		if err := os.RemoveAll(p); err != nil {
			return nil, err
		}
	}
	defer os.RemoveAll(next)
	defer os.RemoveAll(prev)
	// The gateway reads the copy by the name it was started with.
	pol, envs, err := snapshotPolicy(policyFile, next, filepath.Base(rec.Policy.File))
	if err != nil {
		return nil, fmt.Errorf("policy not reloaded (builder %s keeps %s): %w", name, rec.Policy.Digest, err)
	}
	for _, e := range envs {
		if !slices.Contains(rec.PolicyEnv, e) {
			return nil, fmt.Errorf("policy not reloaded (builder %s keeps %s): it reads env://%s, which the gateway was not started with: remove the builder and create it again", name, rec.Policy.Digest, e)
		}
	}
	if pol.Digest == rec.Policy.Digest && pol.Fingerprint == rec.Policy.Fingerprint {
		fmt.Fprintf(progress, "policy unchanged (%s): nothing to reload\n", pol.Digest)
		return rec, nil
	}
	// The gateway's mount is the directory: its files are replaced in
	// place (the directory itself cannot be, the mount would keep the old
	// one), after a copy of them is kept to put back.
	if err := os.CopyFS(prev, os.DirFS(live)); err != nil {
		return nil, err
	}
	if err := replaceContents(live, next); err != nil {
		_ = replaceContents(live, prev)
		return nil, err
	}
	since := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	if _, err := d.run(ctx, "kill", "--signal", "HUP", rec.GatewayContainer); err != nil {
		_ = replaceContents(live, prev)
		return nil, err
	}
	verdict, err := waitReload(ctx, d, rec.GatewayContainer, since, timeout)
	if err != nil || verdict != "" {
		_ = replaceContents(live, prev)
		if err == nil {
			err = fmt.Errorf("the gateway refused it: %s", verdict)
		}
		return nil, fmt.Errorf("policy not reloaded (builder %s keeps %s): %w", name, rec.Policy.Digest, err)
	}
	pol.File = rec.Policy.File
	rec.Policy = pol
	if err := rec.save(); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "policy %s (%s) reloaded by %s\n", pol.Source, pol.Digest, rec.GatewayContainer)
	return rec, nil
}

// replaceContents makes dir's files those of src: each file of src
// renamed over dir's, then dir's files that src does not have removed.
func replaceContents(dir, src string) error {
	keep := map[string]bool{}
	err := filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		keep[rel] = true
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		tmp := dst + ".tmp"
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, dst)
	})
	if err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if !keep[rel] {
			return os.Remove(p)
		}
		return nil
	})
}

// waitReload waits for the gateway's answer to SIGHUP in its log since
// since: "" when it reloaded, else its reason for keeping the old policy.
func waitReload(ctx context.Context, d Docker, container, since string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, _ := d.cmd(ctx, "logs", "--since", since, container).CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			switch {
			case strings.Contains(line, `"msg":"policy not reloaded`):
				return line, nil
			case strings.Contains(line, `"msg":"policy reloaded"`):
				return "", nil
			}
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("the gateway %s did not log a reload within %s (docker trustcache builder logs %s)", container, timeout, strings.TrimPrefix(strings.TrimSuffix(container, "-gateway"), "trustcache-"))
}
