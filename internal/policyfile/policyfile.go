// Package policyfile finds the trust policy file a command uses, and
// decides whether a policy file found on disk (rather than named by the
// user) may be read at all: that it is the user's own, reached without
// leaving the repository, the home directory or the filesystem it was
// looked for in.
//
// It reads nothing of the process: the environment (TRUSTCACHE_POLICY,
// HOME) and the docker config directory are given to it in an Env.
package policyfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// EnvPolicy is the variable naming the policy file when no flag does.
const EnvPolicy = "TRUSTCACHE_POLICY"

// FileName is the policy file looked up at the root of the build
// context's repository.
const FileName = ".trustcache.yaml"

// Env is what finding a policy reads of its environment.
type Env struct {
	// Lookup returns an environment variable's value and whether it is
	// set (os.LookupEnv for the process). TRUSTCACHE_POLICY and HOME are
	// read. Nil reads nothing.
	Lookup func(name string) (string, bool)
	// ConfigDir is the docker config directory, whose
	// trustcache/policy.yaml is the last place looked.
	ConfigDir string
}

func (e Env) get(name string) string {
	if e.Lookup == nil {
		return ""
	}
	v, _ := e.Lookup(name)
	return v
}

// ConfigPolicy returns where the docker config directory's policy is:
// configDir/trustcache/policy.yaml.
func ConfigPolicy(configDir string) string {
	return filepath.Join(configDir, "trustcache", "policy.yaml")
}

// Find returns the policy file to use, in this order: given (the flag, or
// a command's FILE argument) when not empty; TRUSTCACHE_POLICY; a
// .trustcache.yaml in startDir or its parents (Discover; skipped when
// startDir is empty, as for a server); policy.yaml in the trustcache
// folder of the docker config directory. Discovered files that were
// skipped are named on warn. When none is found the error is a
// *NoPolicyError; the caller fills in how the policy is passed to it.
func Find(env Env, given, startDir string, warn io.Writer) (string, error) {
	if given != "" {
		return given, nil
	}
	if p := env.get(EnvPolicy); p != "" {
		return p, nil
	}
	if startDir != "" {
		p, err := Discover(startDir, env.get("HOME"), warn)
		if p != "" || err != nil {
			return p, err
		}
	}
	p := ConfigPolicy(env.ConfigDir)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", &NoPolicyError{Discovers: startDir != "", ConfigPolicy: p}
}

// NoPolicyError reports that no policy was given or found. Its message
// lists every way to give one to the command that failed.
type NoPolicyError struct {
	Flag         string // the command's policy flag ("--trust-policy"); "" reads "the policy flag"
	Positional   bool   // the command takes the policy as its FILE argument (policy lint)
	Discovers    bool   // the command looks for .trustcache.yaml (serve does not)
	ConfigPolicy string // where the docker config dir's policy would be
}

func (e *NoPolicyError) Error() string {
	flag := e.Flag
	if flag == "" {
		flag = "the policy flag"
	}
	msg := "no policy: pass " + flag + " FILE"
	if e.Positional {
		msg = "no policy: pass the policy FILE"
	}
	msg += ", set " + EnvPolicy
	if e.Discovers {
		msg += ", add " + FileName + " at the root of your repository"
	}
	return msg + ", or put one at " + e.ConfigPolicy + " (docker trustcache policy init writes a starter)"
}

// RefusedError is a discovered policy file that must not be read at all
// (not skipped with a warning): a symbolic link out of its directory or
// one that does not resolve, or something other than a regular file.
type RefusedError struct {
	Path string // the file discovered
	err  error  // the message, naming Path, and the cause
}

func (e *RefusedError) Error() string { return e.err.Error() }
func (e *RefusedError) Unwrap() error { return errors.Unwrap(e.err) }

// refused returns a *RefusedError for p; format and args follow
// "policy PATH".
func refused(p, format string, args ...any) error {
	return &RefusedError{Path: p, err: fmt.Errorf("policy %s"+format, append([]any{p}, args...)...)}
}

// Discover looks for .trustcache.yaml in startDir and its parents. The
// walk is bounded so that only a file the user (or their repository) put
// there can be found:
//   - it ends at the repository root (the first directory holding .git):
//     a project's policy sits at its root, and nothing above belongs to it;
//   - it never goes above home, the user's home directory ($HOME; "" sets
//     no such bound): what is above it is other people's or the system's;
//   - it never crosses a filesystem boundary (as git does not by default):
//     a mount such as /tmp is another place, often shared.
//
// A file found is taken only when no one else could have written it: it
// must be owned by the user (or root) and neither it nor its directory
// writable by others (world-writable, or group-writable for a group other
// than the user's own). Such a file is skipped with a warning on warn, and
// the walk goes on. A file that is a symbolic link is followed only within
// the directory it was found in: one leading elsewhere (a pull request's
// .trustcache.yaml pointing at a host file) is a *RefusedError that names
// the link, never the target's content. Nothing found is ("", nil).
func Discover(startDir, home string, warn io.Writer) (string, error) {
	dir, err := filepath.Abs(startDir)
	if err != nil {
		return "", nil
	}
	if home != "" {
		if h, err := filepath.Abs(home); err == nil {
			home = h
		}
	}
	for {
		p := filepath.Join(dir, FileName)
		skip, err := Check(p, dir)
		if err != nil {
			return "", err
		}
		if skip != "" {
			fmt.Fprintf(warn, "WARNING: trustcache: not using %s: %s\n", p, skip)
		} else if _, err := os.Lstat(p); err == nil {
			return p, nil
		}
		if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
			return "", nil
		}
		if dir == home {
			return "", nil
		}
		parent := filepath.Dir(dir)
		if parent == dir || !sameFilesystem(dir, parent) {
			return "", nil
		}
		dir = parent
	}
}

// Check checks a discovered policy file p in dir. It returns why the file
// is skipped ("" when it is taken or absent), or a *RefusedError when it
// must not be read at all.
func Check(p, dir string) (skip string, err error) {
	li, err := os.Lstat(p)
	if err != nil {
		return "", nil
	}
	target := p
	if li.Mode()&fs.ModeSymlink != 0 {
		if target, err = resolveWithin(p, dir); err != nil {
			return "", err
		}
	}
	fi, err := os.Stat(target)
	if err != nil {
		return "", refused(p, ": %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", refused(p, " is not a regular file")
	}
	if why := writableByOthers(fi); why != "" {
		return "the file is " + why, nil
	}
	if why := ownedByOther(fi); why != "" {
		return why, nil
	}
	for _, d := range []string{dir, filepath.Dir(target)} {
		di, err := os.Stat(d)
		if err != nil {
			return "", refused(p, ": %w", err)
		}
		if why := writableByOthers(di); why != "" {
			return "its directory " + d + " is " + why + " (anyone who can write there could have put it there)", nil
		}
	}
	return "", nil
}

// resolveWithin returns where the symbolic link p leads, or a
// *RefusedError when that is not within dir.
func resolveWithin(p, dir string) (string, error) {
	resolved, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", refused(p, ": a symbolic link that does not resolve: %w", err)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", refused(p, ": %w", err)
	}
	if rel, err := filepath.Rel(realDir, resolved); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", refused(p, " is a symbolic link out of %s; a discovered policy is never followed out of its directory (pass the file with --trust-policy or %s if you mean it)", dir, EnvPolicy)
	}
	return resolved, nil
}
