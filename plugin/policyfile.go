package plugin

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli/config"

	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// policyFileName is the policy file looked up at the root of the build
// context's repository.
const policyFileName = ".trustcache.yaml"

// findPolicy returns the policy file to use, in this order: the
// --trust-policy flag; TRUSTCACHE_POLICY; .trustcache.yaml in startDir or its parents
// (see discoverPolicy); policy.yaml in the trustcache folder of the docker
// config dir. Discovered files that were skipped are named on warn.
func findPolicy(flag, startDir string, warn io.Writer) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if p := getenv(envPolicy); p != "" {
		return p, nil
	}
	if startDir != "" {
		p, err := discoverPolicy(startDir, warn)
		if p != "" || err != nil {
			return p, err
		}
	}
	p := filepath.Join(config.Dir(), "trustcache", "policy.yaml")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", &noPolicyError{flag: "--" + flagTrustPolicy, discovers: startDir != "", configPolicy: p}
}

// noPolicyError reports that no policy was given or found. Its message
// lists every way to give one to the command that failed.
type noPolicyError struct {
	flag         string // the policy flag, --trust-policy
	positional   bool   // the command takes the policy as its FILE argument (policy lint)
	discovers    bool   // the command looks for .trustcache.yaml (serve does not)
	configPolicy string // where the docker config dir's policy would be
}

func (e *noPolicyError) Error() string {
	msg := "no policy: pass " + e.flag + " FILE"
	if e.positional {
		msg = "no policy: pass the policy FILE"
	}
	msg += ", set " + envPolicy
	if e.discovers {
		msg += ", add " + policyFileName + " at the root of your repository"
	}
	return msg + ", or put one at " + e.configPolicy + " (docker trustcache policy init writes a starter)"
}

// discoverPolicy looks for .trustcache.yaml in startDir and its parents.
// The walk is bounded so that only a file the user (or their repository)
// put there can be found:
//   - it ends at the repository root (the first directory holding .git):
//     a project's policy sits at its root, and nothing above belongs to it;
//   - it never goes above the user's home directory ($HOME): what is above
//     it is other people's or the system's;
//   - it never crosses a filesystem boundary (as git does not by default):
//     a mount such as /tmp is another place, often shared.
//
// A file found is taken only when no one else could have written it: it
// must be owned by the user (or root) and neither it nor its directory
// writable by others (world-writable, or group-writable for a group other
// than the user's own). Such a file is skipped with a warning, and the walk
// goes on. A file that is a symbolic link is followed only within the
// directory it was found in: one leading elsewhere (a pull request's
// .trustcache.yaml pointing at a host file) is an error that names the
// link, never the target's content.
func discoverPolicy(startDir string, warn io.Writer) (string, error) {
	dir, err := filepath.Abs(startDir)
	if err != nil {
		return "", nil
	}
	home := getenv("HOME")
	if home != "" {
		if h, err := filepath.Abs(home); err == nil {
			home = h
		}
	}
	for {
		p := filepath.Join(dir, policyFileName)
		ok, err := acceptPolicyFile(p, dir)
		if err != nil {
			return "", err
		}
		if ok != "" {
			fmt.Fprintf(warn, "WARNING: trustcache: not using %s: %s\n", p, ok)
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

// acceptPolicyFile checks a discovered policy file p in dir. It returns
// why the file is skipped ("" when it is taken or absent), or an error
// when it must not be read at all.
func acceptPolicyFile(p, dir string) (string, error) {
	li, err := os.Lstat(p)
	if err != nil {
		return "", nil
	}
	target := p
	if li.Mode()&fs.ModeSymlink != 0 {
		resolved, err := filepath.EvalSymlinks(p)
		if err != nil {
			return "", usagef("policy %s: a symbolic link that does not resolve: %w", p, err)
		}
		realDir, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return "", usagef("policy %s: %w", p, err)
		}
		if rel, err := filepath.Rel(realDir, resolved); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return "", usagef("policy %s is a symbolic link out of %s; a discovered policy is never followed out of its directory (pass the file with --trust-policy or %s if you mean it)", p, dir, envPolicy)
		}
		target = resolved
	}
	fi, err := os.Stat(target)
	if err != nil {
		return "", usagef("policy %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return "", usagef("policy %s is not a regular file", p)
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
			return "", usagef("policy %s: %w", p, err)
		}
		if why := writableByOthers(di); why != "" {
			return "its directory " + d + " is " + why + " (anyone who can write there could have put it there)", nil
		}
	}
	return "", nil
}

// loadPolicy finds and loads the policy; every failure is a configuration
// error.
func loadPolicy(flag, startDir string, warn io.Writer) (*trustpolicy.Policy, error) {
	path, err := findPolicy(flag, startDir, warn)
	if err != nil {
		return nil, asUsage(err)
	}
	p, err := trustpolicy.Load(path)
	if err != nil {
		return nil, asUsage(fmt.Errorf("policy: %w", err))
	}
	return p, nil
}
