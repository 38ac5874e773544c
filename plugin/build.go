package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/docker-trustcache/docker-trustcache/internal/atomicfile"
	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
	"github.com/docker-trustcache/docker-trustcache/internal/cli"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/internal/provenance"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/decision"
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

// cacheReport is what the build did with one --cache-from source.
type cacheReport struct {
	Source string          `json:"source"`           // the source as given
	Target string          `json:"target,omitempty"` // the bake target importing it (bake only)
	Type   string          `json:"type"`
	Action decision.Action `json:"action"`           // used, dropped, passed (not verified), blocked
	Pinned string          `json:"pinned,omitempty"` // the verified REPO@DIGEST, for used registry caches
	// Guarantee is how a used registry cache reached BuildKit:
	// verified-bytes (through the verified content endpoint) or
	// digest-pin (the pinned registry reference only).
	Guarantee string `json:"guarantee,omitempty"`
	// Refused is what the verified content endpoint kept from BuildKit
	// (content that did not match its digest, or that the registry did not
	// serve), so BuildKit ran without it.
	Refused []string       `json:"refused,omitempty"`
	Reason  string         `json:"reason,omitempty"`
	Result  *verify.Result `json:"result,omitempty"`
}

// trustReport is the trust report: --trust-report writes it as JSON.
type trustReport struct {
	Policy string         `json:"policy"`
	Caches []cacheReport  `json:"caches"`
	Signed []signedReport `json:"signed,omitempty"`
	// NotSigned says why a build asked to --sign signed nothing.
	NotSigned string `json:"notSigned,omitempty"`
	Built     bool   `json:"built"`
	// Provenance is the build's provenance record (docs/provenance.md);
	// Attested, the subjects --sign attached it to, signed.
	Provenance *provenance.Statement `json:"provenance,omitempty"`
	Attested   []signedReport        `json:"attested,omitempty"`

	// For the summary: the command ("build", or "bake"; "" is build), and
	// whether it ran (Built says whether it succeeded).
	command string
	ran     bool
}

// signedReport is one digest --sign signed.
type signedReport struct {
	Reference string `json:"reference"` // REPO@DIGEST
	Kind      string `json:"kind"`      // cache or image
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

	if !inv.Trust.Sign && (inv.Trust.Key != "" || len(inv.Trust.SignAnnotations) > 0 || inv.Trust.Keyless || inv.Trust.IdentityToken != "" || inv.Trust.SigningConfig != "") {
		return usagef("--key, --keyless, --identity-token, --signing-config and --sign-annotation need --sign")
	}
	// A build that imports no cache has nothing to verify and needs no
	// policy: through the alias, a project without one builds exactly as
	// with docker buildx build.
	p, err := loadPolicy(env, inv.Trust.Policy, contextDir(inv.Context), dockerCLI.Err())
	var none *noPolicyError
	if errors.As(err, &none) {
		none.Flag = "--trust-policy"
		if len(inv.CacheFrom) == 0 {
			p, err = nil, nil
		}
	}
	if err != nil {
		return err
	}
	var signer *buildSigner
	if inv.Trust.Sign {
		if signer, err = newBuildSigner(dockerCLI, env, inv, p); err != nil {
			return err
		}
	}
	report := &trustReport{}
	var v *verify.Verifier
	if p != nil {
		var done func()
		v, done = newVerifier(dockerCLI, env, p, inv.Trust.NoLedger)
		defer done()
		report.Policy = p.File
	}
	decisions, blocked := decideCaches(ctx, v, inv.CacheFrom, report)
	for _, c := range report.Caches {
		noteRemoved(dockerCLI.Err(), c)
	}
	if blocked != nil {
		printReport(dockerCLI.Err(), report)
		if err := writeReport(inv.Trust.Report, report); err != nil {
			return err
		}
		return blocked
	}

	if signer != nil {
		if why := unverifiedImports(report.Caches); why != "" {
			report.NotSigned = why
			printReport(dockerCLI.Err(), report)
			if err := writeReport(inv.Trust.Report, report); err != nil {
				return err
			}
			return cli.StatusError{StatusCode: ExitUntrusted, Status: "trustcache: not building: " + why}
		}
	}

	ep, err := serveVerified(ctx, dockerCLI, env, inv.Builder, p, report, decisions)
	if err != nil {
		printReport(dockerCLI.Err(), report)
		if werr := writeReport(inv.Trust.Report, report); werr != nil {
			return werr
		}
		return err
	}
	if ep != nil {
		defer ep.Close()
		streams.env = append(streams.env, endpointEnv(env, dockerCLI.Err(), ep)...) // its credential: never on argv
	}
	argv, err := inv.Rewrite(decisions)
	if err != nil {
		return err
	}
	pre := []string{"build"}
	exports := signer // reads what the build exported, for --sign and the provenance record
	if exports == nil && inv.Trust.Report != "" {
		exports = buildExports(dockerCLI, env, inv)
	}
	if exports != nil {
		if pre, err = exports.prepareExports(pre); err != nil {
			return err
		}
		defer exports.cleanup()
	}
	buildErr := runDocker(ctx, bin, append(append(buildx, pre...), argv...), streams)
	report.ran, report.Built = true, buildErr == nil
	noteRefused(dockerCLI.Err(), ep, report)
	if buildErr == nil && exports != nil {
		// The exports are signed and the provenance record attached at once
		// (signAndRecord: the record claims no signature).
		var sign func(context.Context) ([]signedReport, error)
		if signer != nil {
			sign = func(ctx context.Context) ([]signedReport, error) { return signer.signExported(ctx, v) }
		}
		signErr, recordErr := signAndRecord(ctx, report, sign, func(ctx context.Context) error {
			return recordProvenance(ctx, exports, exports.exported, signer != nil, report, p, version)
		})
		if err := exportsFailed("build", signErr, recordErr); err != nil {
			printReport(dockerCLI.Err(), report)
			_ = writeReport(inv.Trust.Report, report)
			return err
		}
	}
	printReport(dockerCLI.Err(), report)
	if err := writeReport(inv.Trust.Report, report); err != nil && buildErr == nil {
		return err
	}
	return buildErr
}

// contextDir is where policy discovery starts: the build context when it
// is a local directory, else the working directory.
func contextDir(buildContext string) string {
	if st, err := os.Stat(buildContext); err == nil && st.IsDir() {
		return buildContext
	}
	return "."
}

// decideCaches verifies every cache source (concurrently, bounded) and
// decides its fate. blocked is non-nil when the policy says the build must
// not start.
func decideCaches(ctx context.Context, v *verify.Verifier, srcs []buildargs.CacheSource, report *trustReport) (map[int]buildargs.CacheSpec, error) {
	reports := make([]cacheReport, len(srcs))
	pass := make([]*buildargs.CacheSpec, len(srcs))
	var g errgroup.Group
	g.SetLimit(verifyConcurrency)
	for i, src := range srcs {
		g.Go(func() error {
			pass[i], reports[i] = decideCache(ctx, v, src.Spec)
			return nil
		})
	}
	_ = g.Wait() // decideCache reports its failures in reports[i]

	out := make(map[int]buildargs.CacheSpec, len(srcs))
	var blocked error
	for i := range srcs {
		// Key material given as a cache by mistake is never echoed.
		reports[i].Reason = redactPEM(reports[i].Reason)
		if pass[i] != nil {
			out[i] = *pass[i]
		}
		if reports[i].Action == decision.Blocked {
			code := exitFor(decision.StatusOf(reports[i].Result))
			if blocked == nil || code == ExitUntrusted {
				blocked = cli.StatusError{StatusCode: code, Status: fmt.Sprintf("trustcache: not building: cache %s is %s (policy onUntrusted: fail)", reports[i].Source, reports[i].Result.Verdict)}
			}
		}
	}
	report.Caches = reports
	return out, blocked
}

// decideCache verifies one cache source and decides its fate by the
// verdict → action table in verify/decision: what it is passed on to buildx
// as, or nil when it leaves the build.
func decideCache(ctx context.Context, v *verify.Verifier, spec buildargs.CacheSpec) (*buildargs.CacheSpec, cacheReport) {
	rep := cacheReport{Source: redactPEM(spec.String()), Type: spec.Type}
	o := decision.Cache(ctx, v.Policy(), v.Verify, spec.Type, spec.Ref())
	rep.Action, rep.Reason, rep.Result = o.Action, o.Reason, o.Result
	switch o.Action {
	case decision.Used:
		pinned := spec
		pinned.Set("ref", o.Result.Pinned())
		rep.Pinned = o.Result.Pinned()
		return &pinned, rep
	case decision.Passed:
		return &spec, rep
	default:
		return nil, rep
	}
}

// noteRemoved writes one line for a cache the build runs without: a note
// for a missing one (a tag nothing was pushed to yet, as on a new branch's
// first build), a warning for a dropped or blocked one.
func noteRemoved(w io.Writer, c cacheReport) {
	if c.Action != decision.Dropped && c.Action != decision.Blocked {
		return
	}
	target := ""
	if c.Target != "" {
		target = " of target " + printable(c.Target)
	}
	if c.Result != nil && c.Result.Missing {
		fmt.Fprintf(w, "trustcache: no cache at %s%s yet (the tag does not exist in the registry): building without it\n", printable(c.Result.Reference), target)
		return
	}
	fmt.Fprintf(w, "WARNING: trustcache: %s cache %s%s: %s\n", c.Action, printable(c.Source), target, printable(c.Reason))
}

// unverifiedImports says why a signing build must not run: the caches it
// would import without a trusted verdict (an audit scope's untrusted
// cache, a skip scope's, an unsigned type the policy allows). A build that
// imported one and signed its own export would hand the trusted key's
// signature to content built from a cache nobody vouched for. It returns
// "" when every imported cache was verified trusted.
func unverifiedImports(caches []cacheReport) string {
	var bad []string
	for _, c := range caches {
		switch {
		case c.Action == decision.Passed,
			c.Action == decision.Used && (c.Result == nil || !c.Result.Trusted):
			bad = append(bad, c.Source+" ("+c.Reason+")")
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return "not signing a build that imports caches not verified trusted: " + strings.Join(bad, "; ") +
		". A signing build imports only trusted caches: remove these --cache-from, or make their scopes strict so they are dropped"
}

// printReport writes the trust summary to w (stderr).
func printReport(w io.Writer, r *trustReport) {
	if len(r.Caches) == 0 && len(r.Signed) == 0 && r.NotSigned == "" {
		return
	}
	var b strings.Builder
	command := r.command
	if command == "" {
		command = "build"
	}
	switch {
	case r.Built:
		b.WriteString("trustcache: summary\n")
	case r.ran:
		fmt.Fprintf(&b, "trustcache: summary: the %s failed; what was decided for its caches:\n", command)
	default:
		fmt.Fprintf(&b, "trustcache: summary: the %s did not run; what was decided for its caches:\n", command)
	}
	if r.Policy != "" {
		fmt.Fprintf(&b, "  policy   %s\n", printable(r.Policy))
	} else {
		b.WriteString("  policy   none found: no cache was imported, and what was signed is not recorded in the ledger\n")
	}
	for _, c := range r.Caches {
		src := printable(c.Source)
		if c.Target != "" {
			src = "target " + printable(c.Target) + ": " + src
		}
		switch c.Action {
		case decision.Used:
			// "used" only for a build that succeeded: a cache is passed on
			// to a build that failed or never ran, not used.
			label := "used"
			switch {
			case r.Built:
			case c.Result != nil && c.Result.Trusted:
				label = "verified"
			default:
				label = "audited"
			}
			fmt.Fprintf(&b, "  %-8s %s\n           pinned to %s", label, src, printable(c.Pinned))
			switch c.Guarantee {
			case guaranteeVerifiedBytes:
				b.WriteString(" (verified bytes)")
			case guaranteeDigestPin:
				b.WriteString(" (digest pin only)")
			}
			if c.Result != nil && len(c.Result.Signers) > 0 {
				names := make([]string, len(c.Result.Signers))
				for i, s := range c.Result.Signers {
					names[i] = s.Builder
				}
				fmt.Fprintf(&b, ", signed by %s", printable(strings.Join(names, ", ")))
			}
			if c.Reason != "" {
				fmt.Fprintf(&b, "\n           %s", printable(c.Reason))
			}
			if c.Result != nil && c.Result.Fallback != nil { // docs/fallback.md
				fb := c.Result.Fallback
				fmt.Fprintf(&b, "\n           fallback: tag %s is %s %s; its last trusted digest (from %s) is used", printable(fb.Tag), fb.TagStatus, printable(fb.TagDigest), fb.Source)
			}
			for _, r := range c.Refused {
				fmt.Fprintf(&b, "\n           not passed on to BuildKit: %s", printable(r))
			}
			b.WriteString("\n")
		default:
			fmt.Fprintf(&b, "  %-8s %s\n           %s\n", c.Action, src, printable(c.Reason))
		}
	}
	for _, s := range r.Signed {
		fmt.Fprintf(&b, "  signed   %s (%s)\n", printable(s.Reference), s.Kind)
	}
	for _, a := range r.Attested {
		fmt.Fprintf(&b, "  attested %s (provenance record)\n", printable(a.Reference))
	}
	if r.NotSigned != "" {
		fmt.Fprintf(&b, "  nothing signed: %s\n", printable(r.NotSigned))
	}
	io.WriteString(w, b.String())
}

// writeReport writes the report as JSON to path (nothing when path is
// empty), atomically.
func writeReport(path string, r *trustReport) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o644)
}
