package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/app/pipeline"
	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
	"github.com/docker-trustcache/docker-trustcache/internal/cachespec"
	"github.com/docker-trustcache/docker-trustcache/internal/cli"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
)

const bakeHelp = `Usage:  docker trustcache bake [OPTIONS] [TARGET...]

Run "docker buildx bake" with every target's cache-from verified against the
trust policy first. The caches are read from the bake definition as buildx
resolves it (docker buildx bake --print, with the same files, --set, --var
and targets), each verified once, and the bake runs with every target's
cache-from set on the command line (--set TARGET.cache-from=…, which no bake
file can undo): trusted registry caches through the bake's verified content
endpoint, pinned to the verified digest, untrusted or inconclusive ones dropped
with a warning, or the bake does not start (policy onUntrusted: fail). Cache
types registry signatures cannot cover (local, gha, s3, azblob) are dropped
unless the policy's allowUnsignedTypes lists them. Every other flag goes to
buildx unchanged and in order. A bake that imports no cache needs no
policy. A signing bake (--sign) imports only caches verified trusted, or
does not start. With --print or --list, buildx runs as given: it builds
nothing.

trustcache options:
      --trust-policy FILE        Policy file (default: $TRUSTCACHE_POLICY,
                                 .trustcache.yaml in the working directory's
                                 repository, the docker config dir)
      --sign                     After a successful bake, sign each target's
                                 registry cache (cache-to type=registry) and
                                 pushed images, by the digests the bake
                                 reported, and attach to each the signed
                                 provenance record (docs/provenance.md)
` + signKeyHelp + `      --trust-report FILE        Write the trust report (each target's caches
                                 used and dropped, with why; what was signed;
                                 the provenance record) as JSON
` + signOptionsHelp + `
Examples:
` + bakeExample + `

Exit status: the bake's own; 3 or 4 when onUntrusted: fail stopped the
bake for an untrusted or inconclusive cache; 2 for a usage or
configuration error.

docker buildx bake options follow.
`

func newBakeCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	return &cobra.Command{
		Use:     "bake [OPTIONS] [TARGET...]",
		Example: bakeExample,
		Short:   "Bake with only verified, digest-pinned caches (docker buildx bake)",
		Long: `Run "docker buildx bake" with every target's cache-from verified against the
trust policy first; see "docker trustcache bake --help".`,
		// bake's flags are parsed by internal/buildargs, exactly as buildx
		// parses them, so they pass through byte for byte.
		DisableFlagParsing: true,
		Aliases:            []string{"f"}, // as buildx's: "docker builder f"
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStatus(runBake(cmd.Context(), dockerCLI, env, trustcacheVersion(cmd), args))
		},
	}
}

func runBake(ctx context.Context, dockerCLI command.Cli, env *Env, version string, args []string) error {
	inv, err := buildargs.ParseBake(args)
	if err != nil {
		return usagef("docker trustcache bake: %w", err)
	}
	if err := checkBuildxPolicyFlag("bake", inv.Flags); err != nil {
		return err
	}
	bin, buildx, extra := buildxCommand(env, dockerCLI.ConfigFile())
	streams := cliStreams(dockerCLI)
	streams.env = extra
	// bake returns a new argv: "docker buildx bake" followed by args.
	bake := func(args ...string) []string {
		return append(append(append([]string(nil), buildx...), "bake"), args...)
	}
	if inv.Help {
		fmt.Fprint(dockerCLI.Out(), bakeHelp)
		return runDocker(ctx, bin, bake("--help"), streams)
	}
	if inv.Print || inv.List != "" {
		// buildx prints the definition or lists targets or variables, and
		// builds nothing.
		return runDocker(ctx, bin, bake(inv.BuildxArgs()...), streams)
	}
	var targets []buildargs.BakeTarget
	run := func(ctx context.Context, b pipeline.Invocation) error {
		overrides, err := cacheOverrides(targets, b.Pass)
		if err != nil {
			return err
		}
		argv := bake()
		if b.MetadataFile != "" {
			argv = append(argv, "--metadata-file", b.MetadataFile)
		}
		s := streams
		s.env = append(append([]string(nil), streams.env...), b.Env...)
		return runDocker(ctx, bin, append(argv, inv.BuildxArgs(overrides...)...), s)
	}
	pl, err := newPipeline(dockerCLI, env, "bake", version, inv.Trust, inv.MetadataFile, inv.Builder, run)
	if err != nil {
		return err
	}
	p, none, err := runPolicy(dockerCLI, env, inv.Trust.Policy, ".")
	if err != nil {
		return err
	}
	if targets, err = resolveBake(ctx, bin, bake(inv.BuildxArgs(resolveFlags...)...), bakeReadsStdin(env, inv.Files), &streams); err != nil {
		return err
	}
	return runPipeline(ctx, dockerCLI, env, pl, p, none, inv.Trust.NoLedger, pipelineTargets(targets))
}

// pipelineTargets are the bake's targets, as the pipeline runs them.
func pipelineTargets(targets []buildargs.BakeTarget) []pipeline.Target {
	out := make([]pipeline.Target, len(targets))
	for i, t := range targets {
		out[i] = pipeline.Target{Name: t.Name, CacheFrom: t.CacheFrom, CacheTo: t.CacheTo, Pushes: t.Pushes}
	}
	return out
}

// maxBakeStdin bounds a bake definition read from stdin, which both runs of
// buildx are given.
const maxBakeStdin = 32 << 20

// bakeReadsStdin says whether buildx bake reads its definition from stdin:
// a file "-" (or "cwd://-"), given with -f or, without -f, in
// BUILDX_BAKE_FILE (commands/bake.go bakeEnvFiles, readBakeFiles).
func bakeReadsStdin(env *Env, files []string) bool {
	if len(files) == 0 {
		sep := env.getenv("BUILDX_BAKE_PATH_SEPARATOR")
		if sep == "" {
			sep = string(os.PathListSeparator)
		}
		for _, f := range strings.Split(env.getenv("BUILDX_BAKE_FILE"), sep) {
			files = append(files, strings.TrimSpace(f))
		}
	}
	for _, f := range files {
		if strings.TrimPrefix(f, "cwd://") == "-" {
			return true
		}
	}
	return false
}

// resolveFlags make "docker buildx bake" print the definition it would
// build. They go after the user's flags, so that a --print=false or
// --progress=tty given by the user cannot turn this run into a build or a
// display.
var resolveFlags = []string{"--print", "--progress=quiet"}

// resolveBake returns the bake's targets as buildx resolves them: it runs
// argv ("docker buildx bake" with the user's arguments — files, --set,
// --var, targets … — and resolveFlags) and reads the definition it prints.
// A definition buildx reads from stdin (fromStdin) is read here once and
// given to both runs of buildx: streams.in becomes it. buildx's errors
// reach the user's stderr; a failure stops the bake before it starts.
func resolveBake(ctx context.Context, bin string, argv []string, fromStdin bool, streams *buildStreams) ([]buildargs.BakeTarget, error) {
	stdin := io.Reader(strings.NewReader(""))
	if fromStdin {
		data, err := io.ReadAll(io.LimitReader(streams.in, maxBakeStdin+1))
		if err != nil {
			return nil, fmt.Errorf("reading the bake definition from stdin: %w", err)
		}
		if len(data) > maxBakeStdin {
			return nil, usagef("the bake definition on stdin is larger than %d bytes", maxBakeStdin)
		}
		stdin, streams.in = bytes.NewReader(data), bytes.NewReader(data)
	}
	var out bytes.Buffer
	err := runDocker(ctx, bin, argv, buildStreams{in: stdin, out: &out, err: streams.err, env: streams.env})
	var st cli.StatusError
	if errors.As(err, &st) {
		st.Status = "trustcache: not baking: docker buildx bake --print could not resolve the bake definition"
		return nil, st
	}
	if err != nil {
		return nil, err
	}
	targets, err := buildargs.ParseBakeDefinition(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("reading what docker buildx bake --print printed: %w", err)
	}
	return targets, nil
}

// cacheOverrides returns the --set flags that give every target exactly
// the caches the pipeline passes on (pass[t], by index in target t's
// cache-from): "*.cache-from=" clears every target's (a target the
// definition gained since it was resolved included), then one --set
// TARGET.cache-from=SPEC per cache kept or pinned. buildx applies --set
// after the bake files, and these come after the user's own --set, so
// nothing can add a cache to them.
//
// buildx counts a type=local cache given with --set as leave to read its
// src (bake.Target.AddOverrides adds it to the fs.read entitlements), so a
// local cache the policy lets through (allowUnsignedTypes) is read without
// the fs.read prompt bake would show for it in a bake file.
func cacheOverrides(targets []buildargs.BakeTarget, pass []map[int]cachespec.Spec) ([]string, error) {
	out := []string{"--set", "*.cache-from="}
	for ti, t := range targets {
		for i, given := range t.CacheFrom {
			spec, ok := pass[ti][i]
			if !ok {
				continue
			}
			s := spec.String()
			if back, err := cachespec.Parse(s); err != nil || !back.Equal(spec) {
				return nil, fmt.Errorf("cache %s of target %s cannot be passed on to buildx as written (%q does not read back the same)", printable(given.String()), t.Name, s)
			}
			out = append(out, "--set", t.Name+".cache-from="+s)
		}
	}
	return out, nil
}
