package plugin

import (
	"errors"
	"fmt"
	"io"

	"github.com/docker-trustcache/docker-trustcache/internal/policyfile"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// findPolicy returns the policy file to use (policyfile.Find, with the
// environment env gives): the --trust-policy flag; TRUSTCACHE_POLICY;
// .trustcache.yaml in startDir or its parents; policy.yaml in the
// trustcache folder of the docker config dir. Every failure is a
// configuration error; when none is found it wraps a
// *policyfile.NoPolicyError naming --trust-policy.
func findPolicy(env *Env, flag, startDir string, warn io.Writer) (string, error) {
	path, err := policyfile.Find(env.policyEnv(), flag, startDir, warn)
	var none *policyfile.NoPolicyError
	if errors.As(err, &none) {
		none.Flag = "--" + flagTrustPolicy
	}
	return path, asUsage(err)
}

// loadPolicy finds and loads the policy; every failure is a configuration
// error.
func loadPolicy(env *Env, flag, startDir string, warn io.Writer) (*trustpolicy.Policy, error) {
	path, err := findPolicy(env, flag, startDir, warn)
	if err != nil {
		return nil, err
	}
	p, err := trustpolicy.Load(path)
	if err != nil {
		return nil, asUsage(fmt.Errorf("policy: %w", err))
	}
	return p, nil
}

// noPolicyError is what findPolicy's error wraps when no policy is found.
type noPolicyError = policyfile.NoPolicyError
