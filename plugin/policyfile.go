package plugin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/docker/cli/cli/config"

	"github.com/docker-trustcache/docker-trustcache/verify"
)

// policyFileName is the policy file looked up at the root of the build
// context's repository.
const policyFileName = ".trustcache.yaml"

// findPolicy returns the policy file to use, in this order: the --policy
// flag; TRUSTCACHE_POLICY; .trustcache.yaml in startDir or its parents up to
// the repository root (the first directory holding .git); policy.yaml in
// the trustcache folder of the docker config dir.
func findPolicy(flag, startDir string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if p := getenv(envPolicy); p != "" {
		return p, nil
	}
	if startDir != "" {
		if dir, err := filepath.Abs(startDir); err == nil {
			for {
				p := filepath.Join(dir, policyFileName)
				if _, err := os.Stat(p); err == nil {
					return p, nil
				}
				if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
					break
				}
				parent := filepath.Dir(dir)
				if parent == dir {
					break
				}
				dir = parent
			}
		}
	}
	p := filepath.Join(config.Dir(), "trustcache", "policy.yaml")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", errors.New("no policy: pass --policy FILE, set " + envPolicy + ", add " + policyFileName +
		" at the root of your repository, or put one at " + p + " (docker trustcache policy init writes a starter)")
}

// loadPolicy finds and loads the policy; every failure is a configuration
// error.
func loadPolicy(flag, startDir string) (*verify.Policy, error) {
	path, err := findPolicy(flag, startDir)
	if err != nil {
		return nil, asUsage(err)
	}
	p, err := verify.LoadPolicy(path)
	if err != nil {
		return nil, asUsage(fmt.Errorf("policy: %w", err))
	}
	return p, nil
}
