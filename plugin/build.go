package plugin

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/app/pipeline"
	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
)

// The trustcache options build and bake share, in their --help.
const (
	signKeyHelp = `      --key KEY                  Private key for --sign: a file or env://VAR
                                 (default $TRUSTCACHE_KEY)
      --sign-annotation K=V      Extra signed annotation (repeatable)
`
	signOptionsHelp = `      --no-ledger                Neither use nor update the local ledger of
                                 digests verified (or signed) before
      --signature-format FORMAT  legacy or bundle, for --sign
      --keyless                  Sign with a Fulcio certificate for the CI's
                                 OIDC identity instead of --key, timestamped
                                 by the timestamp authority
      --identity-token TOKEN     OIDC token for --keyless, or @FILE (default
                                 $SIGSTORE_ID_TOKEN, else the GitHub Actions
                                 token)
      --signing-config FILE      Sigstore signing config for --keyless
                                 (default: the public-good instance)
`
)

const buildHelp = `Usage:  docker trustcache build [OPTIONS] PATH | URL | -

Run "docker buildx build" with every --cache-from verified against the trust
policy first. Trusted registry caches are passed on pinned to the verified
digest (type=registry,ref=REPO@sha256:…); untrusted or inconclusive ones are
dropped with a warning, or stop the build (policy onUntrusted: fail). Cache
types registry signatures cannot cover (local, gha, s3, azblob) are dropped
unless the policy's allowUnsignedTypes lists them. Every other flag goes to
buildx unchanged and in order. A build that imports no cache needs no
policy: without one it runs exactly as docker buildx build. A signing build
(--sign) imports only caches verified trusted, or does not start.

trustcache options:
      --trust-policy FILE        Policy file (default: $TRUSTCACHE_POLICY,
                                 .trustcache.yaml in the context's repository,
                                 the docker config dir)
      --sign                     After a successful build, sign the registry
                                 cache (--cache-to type=registry) and pushed
                                 images this build exported, by the digests
                                 the build reported, and attach to each the
                                 signed provenance record (the caches it was
                                 built from: docs/provenance.md)
` + signKeyHelp + `      --trust-report FILE        Write the trust report (caches used and
                                 dropped, with why; what was signed; the
                                 provenance record) as JSON
` + signOptionsHelp + `
Examples:
` + buildExample + `

Exit status: the build's own; 3 or 4 when onUntrusted: fail stopped the
build for an untrusted or inconclusive cache; 2 for a usage or
configuration error.

docker buildx build options follow.
`

func newBuildCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	return &cobra.Command{
		Use:     "build [OPTIONS] PATH | URL | -",
		Example: buildExample,
		Short:   "Build with only verified, digest-pinned caches (docker buildx build)",
		Long: `Run "docker buildx build" with every --cache-from verified against the trust
policy first; see "docker trustcache build --help".`,
		// buildx's flags are parsed by internal/buildargs, exactly as buildx
		// parses them, so they pass through byte for byte.
		DisableFlagParsing: true,
		Aliases:            []string{"b"}, // as buildx's: "docker builder b"
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStatus(runBuild(cmd.Context(), dockerCLI, env, trustcacheVersion(cmd), args))
		},
	}
}

func runBuild(ctx context.Context, dockerCLI command.Cli, env *Env, version string, args []string) error {
	inv, err := buildargs.Parse(args)
	if err != nil {
		return usagef("docker trustcache build: %w", err)
	}
	if err := checkBuildxPolicyFlag("build", inv.Flags); err != nil {
		return err
	}
	bin, buildx, extra := buildxCommand(env, dockerCLI.ConfigFile())
	streams := cliStreams(dockerCLI)
	streams.env = extra
	if inv.Help {
		fmt.Fprint(dockerCLI.Out(), buildHelp)
		return runDocker(ctx, bin, append(buildx, "build", "--help"), streams)
	}
	run := func(ctx context.Context, b pipeline.Invocation) error {
		argv, err := inv.Rewrite(b.Pass[0])
		if err != nil {
			return err
		}
		pre := append(append([]string(nil), buildx...), "build")
		if b.MetadataFile != "" {
			pre = append(pre, "--metadata-file", b.MetadataFile)
		}
		s := streams
		s.env = append(append([]string(nil), streams.env...), b.Env...)
		return runDocker(ctx, bin, append(pre, argv...), s)
	}
	pl, err := newPipeline(dockerCLI, env, "build", version, inv.Trust, inv.MetadataFile, inv.Builder, run)
	if err != nil {
		return err
	}
	target := pipeline.Target{CacheTo: inv.CacheTo, Pushes: inv.Pushes()}
	for _, src := range inv.CacheFrom {
		target.CacheFrom = append(target.CacheFrom, src.Spec)
	}
	p, none, err := runPolicy(dockerCLI, env, inv.Trust.Policy, contextDir(inv.Context))
	if err != nil {
		return err
	}
	return runPipeline(ctx, dockerCLI, env, pl, p, none, inv.Trust.NoLedger, []pipeline.Target{target})
}

// contextDir is where policy discovery starts: the build context when it
// is a local directory, else the working directory.
func contextDir(buildContext string) string {
	if st, err := os.Stat(buildContext); err == nil && st.IsDir() {
		return buildContext
	}
	return "."
}
