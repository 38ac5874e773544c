package plugin

import (
	"context"
	"errors"

	"github.com/docker-trustcache/docker-trustcache/internal/app/pipeline"
	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// What build and bake share: both are adapters onto internal/app/pipeline,
// which runs their targets under the trust policy.

// newPipeline returns the pipeline a build or bake (command) runs, with
// the plugin's environment, credentials, stderr and signer; buildx runs
// buildx as the command's arguments say. Signing options without --sign
// are a usage error here, before anything runs.
func newPipeline(dockerCLI command.Cli, env *Env, cmd, version string, trust buildargs.Options, metadataFile, builder string, buildx pipeline.Buildx) (*pipeline.Pipeline, error) {
	return pipeline.New(pipeline.Options{
		Command:         cmd,
		Trust:           trust,
		MetadataFile:    metadataFile,
		Builder:         builder,
		Version:         version,
		Getenv:          env.getenv,
		DockerConfigDir: env.ConfigDir,
		Keychain:        dockerKeychain{dockerCLI},
		Stderr:          dockerCLI.Err(),
		Buildx:          buildx,
		LoadSigner: func(p *trustpolicy.Policy, v *verify.Verifier) (pipeline.Signer, error) {
			return loadExportSigner(dockerCLI, env, trust, p, v)
		},
	})
}

// runPolicy loads the policy a build or bake runs under (--trust-policy
// flag, else discovered from startDir). When none is found, p is nil and
// none says so: a run that imports no cache needs no policy (through the
// alias, a project without one builds exactly as with docker buildx
// build), one that does fails with none.
func runPolicy(dockerCLI command.Cli, env *Env, flag, startDir string) (p *trustpolicy.Policy, none error, err error) {
	p, err = loadPolicy(env, flag, startDir, dockerCLI.Err())
	var noPolicy *noPolicyError
	if errors.As(err, &noPolicy) {
		noPolicy.Flag = "--trust-policy"
		return nil, err, nil
	}
	return p, nil, err
}

// runPipeline runs targets on pl under policy p, with the verifier and
// ledger (unless noLedger) for it; none is the error of a run that would
// import a cache without a policy.
func runPipeline(ctx context.Context, dockerCLI command.Cli, env *Env, pl *pipeline.Pipeline, p *trustpolicy.Policy, none error, noLedger bool, targets []pipeline.Target) error {
	var v *verify.Verifier
	if p == nil {
		for _, t := range targets {
			if len(t.CacheFrom) > 0 {
				return none
			}
		}
	} else {
		var done func()
		v, done = newVerifier(dockerCLI, env, p, noLedger)
		defer done()
	}
	return pl.Run(ctx, p, v, targets)
}
