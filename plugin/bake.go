package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
	"github.com/docker-trustcache/docker-trustcache/internal/cli"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
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

// bakeCache is one cache-from entry of one bake target.
type bakeCache struct {
	target string
	spec   buildargs.CacheSpec
	uniq   int // index of spec among the distinct specs verified
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
	if !inv.Trust.Sign && (inv.Trust.Key != "" || len(inv.Trust.SignAnnotations) > 0 || inv.Trust.Keyless || inv.Trust.IdentityToken != "" || inv.Trust.SigningConfig != "") {
		return usagef("--key, --keyless, --identity-token, --signing-config and --sign-annotation need --sign")
	}
	p, policyErr := loadPolicy(env, inv.Trust.Policy, ".", dockerCLI.Err())
	var none *noPolicyError
	if errors.As(policyErr, &none) {
		none.Flag = "--trust-policy"
	} else if policyErr != nil {
		return policyErr
	}

	// Both runs of buildx read a definition given on stdin (-f -).
	stdin := io.Reader(strings.NewReader(""))
	if bakeReadsStdin(env, inv.Files) {
		data, err := io.ReadAll(io.LimitReader(streams.in, maxBakeStdin+1))
		if err != nil {
			return fmt.Errorf("reading the bake definition from stdin: %w", err)
		}
		if len(data) > maxBakeStdin {
			return usagef("the bake definition on stdin is larger than %d bytes", maxBakeStdin)
		}
		stdin, streams.in = bytes.NewReader(data), bytes.NewReader(data)
	}
	resolve := buildStreams{in: stdin, err: streams.err, env: streams.env}
	targets, err := resolveBake(ctx, bin, bake(inv.BuildxArgs(resolveFlags...)...), resolve)
	if err != nil {
		return err
	}
	caches, uniq := bakeCaches(targets)
	if none != nil {
		if len(caches) > 0 {
			return policyErr
		}
		p = nil // nothing to verify: a bake without cache needs no policy
	}

	var signer *bakeSigner
	if inv.Trust.Sign {
		if signer, err = newBakeSigner(dockerCLI, env, inv, targets, p); err != nil {
			return err
		}
	}
	report := &trustReport{command: "bake"}
	var v *verify.Verifier
	if p != nil {
		var done func()
		v, done = newVerifier(dockerCLI, env, p, inv.Trust.NoLedger)
		defer done()
		report.Policy = p.File
	}
	// Each distinct cache is verified once, whichever targets import it.
	verified := &trustReport{}
	uniqDecisions, blocked := decideCaches(ctx, v, uniq, verified)
	decisions := make(map[int]buildargs.CacheSpec, len(caches))
	report.Caches = make([]cacheReport, len(caches))
	for i, c := range caches {
		report.Caches[i] = verified.Caches[c.uniq]
		report.Caches[i].Target = c.target
		if spec, ok := uniqDecisions[c.uniq]; ok {
			decisions[i] = spec
		}
	}
	for _, c := range report.Caches {
		noteRemoved(dockerCLI.Err(), c)
	}
	fail := func(err error) error {
		printReport(dockerCLI.Err(), report)
		if werr := writeReport(inv.Trust.Report, report); werr != nil {
			return werr
		}
		return err
	}
	if blocked != nil {
		return fail(blocked)
	}
	if signer != nil {
		if why := unverifiedImports(report.Caches); why != "" {
			report.NotSigned = why
			return fail(cli.StatusError{StatusCode: ExitUntrusted, Status: "trustcache: not baking: " + why})
		}
	}

	// One verified content endpoint serves every target.
	ep, err := serveVerified(ctx, dockerCLI, env, inv.Builder, p, report, decisions)
	if err != nil {
		return fail(err)
	}
	if ep != nil {
		defer ep.Close()
		streams.env = append(streams.env, endpointEnv(env, dockerCLI.Err(), ep)...) // its credential: never on argv
	}
	overrides, err := cacheOverrides(caches, decisions)
	if err != nil {
		return err
	}
	argv := bake()
	exports := signer // reads what the bake exported, for --sign and the provenance record
	if exports == nil && inv.Trust.Report != "" {
		exports = bakeExports(dockerCLI, env, inv, targets)
	}
	if exports != nil {
		if argv, err = exports.prepareExports(argv); err != nil {
			return err
		}
		defer exports.base.cleanup()
	}
	bakeErr := runDocker(ctx, bin, append(argv, inv.BuildxArgs(overrides...)...), streams)
	report.ran, report.Built = true, bakeErr == nil
	noteRefused(dockerCLI.Err(), ep, report)
	if bakeErr == nil && exports != nil {
		// As build: signed and recorded at once (signAndRecord).
		var sign func(context.Context) ([]signedReport, error)
		if signer != nil {
			sign = func(ctx context.Context) ([]signedReport, error) { return signer.signExported(ctx, v) }
		}
		signErr, recordErr := signAndRecord(ctx, report, sign, func(ctx context.Context) error {
			return recordProvenance(ctx, exports.base, exports.exported, signer != nil, report, p, version)
		})
		if err := exportsFailed("bake", signErr, recordErr); err != nil {
			printReport(dockerCLI.Err(), report)
			_ = writeReport(inv.Trust.Report, report)
			return err
		}
	}
	printReport(dockerCLI.Err(), report)
	if err := writeReport(inv.Trust.Report, report); err != nil && bakeErr == nil {
		return err
	}
	return bakeErr
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
// buildx's errors reach the user's stderr; a failure stops the bake before
// it starts.
func resolveBake(ctx context.Context, bin string, argv []string, streams buildStreams) ([]buildargs.BakeTarget, error) {
	var out bytes.Buffer
	streams.out = &out
	err := runDocker(ctx, bin, argv, streams)
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

// bakeCaches lists every target's cache-from entries, target by target,
// and the distinct specs among them, to be verified once each.
func bakeCaches(targets []buildargs.BakeTarget) ([]bakeCache, []buildargs.CacheSource) {
	var caches []bakeCache
	var uniq []buildargs.CacheSource
	seen := map[string]int{}
	for _, t := range targets {
		for _, spec := range t.CacheFrom {
			key := spec.String()
			i, ok := seen[key]
			if !ok {
				i = len(uniq)
				seen[key] = i
				uniq = append(uniq, buildargs.CacheSource{Spec: spec, Token: -1, Value: key})
			}
			caches = append(caches, bakeCache{target: t.Name, spec: spec, uniq: i})
		}
	}
	return caches, uniq
}

// cacheOverrides returns the --set flags that give every target exactly
// the caches decisions let through: "*.cache-from=" clears every target's
// (a target the definition gained since it was resolved included), then
// one --set TARGET.cache-from=SPEC per cache kept or pinned. buildx applies
// --set after the bake files, and these come after the user's own --set,
// so nothing can add a cache to them.
//
// buildx counts a type=local cache given with --set as leave to read its
// src (bake.Target.AddOverrides adds it to the fs.read entitlements), so a
// local cache the policy lets through (allowUnsignedTypes) is read without
// the fs.read prompt bake would show for it in a bake file.
func cacheOverrides(caches []bakeCache, decisions map[int]buildargs.CacheSpec) ([]string, error) {
	out := []string{"--set", "*.cache-from="}
	for i, c := range caches {
		spec, ok := decisions[i]
		if !ok {
			continue
		}
		s := spec.String()
		if back, err := buildargs.ParseCacheSpec(s); err != nil || !back.Equal(spec) {
			return nil, fmt.Errorf("cache %s of target %s cannot be passed on to buildx as written (%q does not read back the same)", printable(c.spec.String()), c.target, s)
		}
		out = append(out, "--set", c.target+".cache-from="+s)
	}
	return out, nil
}

// bakeSigner signs what each target of a bake exported, by the digests the
// bake reported in its metadata file (keyed by target): a buildSigner per
// target, sharing the key.
type bakeSigner struct {
	base    *buildSigner // key, annotations, format, metadata file
	targets []bakeSignTarget
}

// bakeSignTarget is what --sign signs for one target.
type bakeSignTarget struct {
	name      string
	cacheRepo *name.Repository // the target's one registry cache-to, if any
	cacheTag  string           // its tag
	pushes    bool
}

// newBakeSigner checks the --sign options against what the targets export
// and loads the key before the bake starts.
func newBakeSigner(dockerCLI command.Cli, env *Env, inv *buildargs.BakeInvocation, targets []buildargs.BakeTarget, p *trustpolicy.Policy) (*bakeSigner, error) {
	bs := &bakeSigner{base: &buildSigner{cli: dockerCLI, env: env, metadataFile: inv.MetadataFile}}
	for _, t := range targets {
		st := bakeSignTarget{name: t.Name, pushes: t.Pushes}
		var caches []string
		for _, spec := range t.CacheTo {
			if spec.Type == "registry" {
				caches = append(caches, spec.Ref())
			}
		}
		switch len(caches) {
		case 0:
		case 1:
			r, err := name.ParseReference(caches[0])
			if err != nil {
				return nil, usagef("target %s: cache-to ref %q: %w", t.Name, caches[0], err)
			}
			repo := r.Context()
			st.cacheRepo, st.cacheTag = &repo, tagOf(r)
		default:
			return nil, usagef("--sign signs one registry cache-to per target (bake reports one cache digest per target); target %s has %d", t.Name, len(caches))
		}
		if st.cacheRepo != nil || st.pushes {
			bs.targets = append(bs.targets, st)
		}
	}
	if len(bs.targets) == 0 {
		return nil, usagef("--sign: this bake exports nothing to sign; give a target cache-to type=registry,ref=… or push its image (--push)")
	}
	if err := bs.base.loadKey(inv.Trust, p); err != nil {
		return nil, err
	}
	return bs, nil
}

// targetExport is one target's signer and what the bake's metadata file
// reports it exported.
type targetExport struct {
	name   string
	signer buildSigner
	md     buildargs.Metadata
}

// targetExports reads the bake's metadata file: each target's part of it,
// with a signer for that target's registry cache and pushes.
func (bs *bakeSigner) targetExports() ([]targetExport, error) {
	md, err := buildargs.ReadBakeMetadata(bs.base.metadataFile)
	if err != nil {
		return nil, err
	}
	out := make([]targetExport, 0, len(bs.targets))
	for _, t := range bs.targets {
		te := targetExport{name: t.name, signer: *bs.base}
		te.signer.cacheRepo, te.signer.cacheTag, te.signer.pushes = t.cacheRepo, t.cacheTag, t.pushes
		tmd, ok, err := md.Target(t.name)
		if !ok {
			return nil, fmt.Errorf("target %s: the bake metadata reports nothing for it; not signing by tag", t.name)
		} else if err != nil {
			return nil, err
		}
		te.md = tmd
		out = append(out, te)
	}
	return out, nil
}

// signExported signs every target's exports as the bake's metadata file
// reports them.
func (bs *bakeSigner) signExported(ctx context.Context, v *verify.Verifier) ([]signedReport, error) {
	targets, err := bs.targetExports()
	if err != nil {
		return nil, err
	}
	var signed []signedReport
	for _, te := range targets {
		more, err := te.signer.signMetadata(ctx, v, te.md)
		signed = append(signed, more...)
		if err != nil {
			return signed, fmt.Errorf("target %s: %w", te.name, err)
		}
	}
	return signed, nil
}
