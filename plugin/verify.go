package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/docker-trustcache/docker-trustcache/internal/cli"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/decision"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

type verifyOptions struct {
	policy   string
	format   string
	noLedger bool
}

func newVerifyCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	var opts verifyOptions
	cmd := &cobra.Command{
		Use:     "verify [OPTIONS] REF [REF...]",
		Example: verifyExample,
		Short:   "Verify that caches are signed by enough allowed builders",
		Long: `Verify that each cache reference (a registry cache manifest or an image with
inline cache, by tag or digest) carries signatures by enough allowed builders
under the policy.

Exit status: 0 when every REF passes (trusted, or its scope level is audit or
skip); 3 when a REF is untrusted; 4 when a registry or network failure left a
REF without a verdict; 5 when a REF's tag does not exist in the registry
(verdict missing: no cache pushed to it yet) and none is untrusted or
inconclusive; 6 when every REF passes but a tag's own digest was not trusted
(forged, missing or rolled back) and its last trusted digest was used instead
(the fallback, docs/fallback.md); 2 for a usage or configuration error.`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.format != "text" && opts.format != "json" {
				return withStatus(usagef("--format: unknown format %q (want text or json)", opts.format))
			}
			p, err := loadPolicy(env, opts.policy, env.workDir(), dockerCLI.Err())
			if err != nil {
				return withStatus(err)
			}
			v, done := newVerifier(dockerCLI, env, p, opts.noLedger)
			defer done()
			return runVerify(cmd.Context(), dockerCLI.Out(), v, opts, args)
		},
	}
	flags := cmd.Flags()
	addPolicyFlag(flags, &opts.policy, "Policy file (default: $TRUSTCACHE_POLICY, .trustcache.yaml in the repository, the docker config dir)")
	flags.StringVar(&opts.format, "format", "text", `Output format: "text" or "json" (one JSON object per line)`)
	flags.BoolVar(&opts.noLedger, "no-ledger", false, "Verify without the local ledger of digests verified before")
	return cmd
}

// newVerifier returns a verifier for policy p with the user's registry
// credentials and, unless noLedger, the verification ledger. A ledger that
// cannot be opened costs only its cache hits: a warning, and verification
// goes on without it. done releases the ledger.
func newVerifier(dockerCLI command.Cli, env *Env, p *trustpolicy.Policy, noLedger bool) (*verify.Verifier, func()) {
	// Load the docker config now: ConfigFile loads it lazily, unguarded, on
	// first use, and references are verified concurrently.
	dockerCLI.ConfigFile()
	opts := []verify.Option{verify.WithRemoteOptions(remote.WithAuthFromKeychain(dockerKeychain{dockerCLI}))}
	l, err := openLedger(env, noLedger)
	if err != nil {
		fmt.Fprintf(dockerCLI.Err(), "WARNING: trustcache: verifying without the ledger: %v\n", err)
	}
	if l == nil {
		return verify.New(p, opts...), func() {}
	}
	return verify.New(p, append(opts, verify.WithLedger(l))...), func() { l.Close() }
}

// runVerify verifies refs and renders one result each; the error carries
// the exit code of the worst result.
func runVerify(ctx context.Context, out io.Writer, v *verify.Verifier, opts verifyOptions, refs []string) error {
	results, err := verifyAll(ctx, v, refs)
	if err != nil {
		return withStatus(asUsage(err))
	}
	for _, res := range results {
		var err error
		if opts.format == "json" {
			err = json.NewEncoder(out).Encode(res)
		} else {
			err = renderResult(out, v.Policy().File, res)
		}
		if err != nil {
			return err
		}
	}
	return verifyStatus(results)
}

// verifyConcurrency bounds the references verified at once.
const verifyConcurrency = 8

// verifyAll verifies refs concurrently (at most verifyConcurrency at once)
// and returns their results in order. The error is the first reference
// that does not parse.
func verifyAll(ctx context.Context, v *verify.Verifier, refs []string) ([]*verify.Result, error) {
	results := make([]*verify.Result, len(refs))
	errs := make([]error, len(refs))
	var g errgroup.Group
	g.SetLimit(verifyConcurrency)
	for i, ref := range refs {
		g.Go(func() error {
			results[i], errs[i] = v.Verify(ctx, ref)
			return nil
		})
	}
	_ = g.Wait() // every error is in errs
	return results, errors.Join(errs...)
}

// verifyStatus maps results to the exit code: untrusted wins over
// inconclusive, inconclusive over missing; results the policy does not
// enforce (audit, skip) pass.
func verifyStatus(results []*verify.Result) error {
	code := exitFor(decision.Worst(results))
	if code == ExitOK && slices.ContainsFunc(results, func(r *verify.Result) bool { return r != nil && r.Fallback != nil }) {
		code = ExitFallback
	}
	if code == ExitOK {
		return nil
	}
	return cli.StatusError{StatusCode: code}
}

// exitFor maps a decision status to the plugin's exit code.
func exitFor(s decision.Status) int {
	switch s {
	case decision.Untrusted:
		return ExitUntrusted
	case decision.Inconclusive:
		return ExitInconclusive
	case decision.Missing:
		return ExitMissing
	default:
		return ExitOK
	}
}

// renderResult writes the text form of a result under the policy in
// policyFile.
func renderResult(w io.Writer, policyFile string, r *verify.Result) error {
	var b strings.Builder
	verdict := string(r.Verdict)
	if r.Fallback != nil {
		verdict += " (fallback: the tag's last trusted digest)"
	}
	fmt.Fprintf(&b, "%s: %s\n", printable(r.Reference), verdict)
	fmt.Fprintf(&b, "  policy:  %s\n", printable(policyFile))
	if r.Digest != "" {
		fmt.Fprintf(&b, "  digest:  %s\n", printable(r.Digest))
	}
	renderFallback(&b, r.Fallback)
	if r.Scope != "" {
		fmt.Fprintf(&b, "  scope:   %s (level %s, threshold %d, on untrusted %s)\n", printable(r.Scope), r.Level, r.Threshold, r.OnUntrusted)
	}
	for _, s := range r.Signers {
		fmt.Fprintf(&b, "  signer:  %s %s", printable(s.Builder), printable(s.KeyID))
		if s.SignedAt != "" {
			fmt.Fprintf(&b, " at %s", printable(s.SignedAt))
		}
		if ctx := signedContext(s.Annotations); ctx != "" {
			fmt.Fprintf(&b, " (%s)", printable(ctx))
		}
		b.WriteString("\n")
	}
	for _, reason := range r.Reasons {
		fmt.Fprintf(&b, "  reason:  %s\n", printable(reason))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// renderFallback writes the fallback lines of a result: what the tag had,
// why it was not used, and the digest used instead.
func renderFallback(b *strings.Builder, fb *verify.Fallback) {
	if fb == nil {
		return
	}
	switch fb.TagStatus {
	case verify.TagMissing:
		fmt.Fprintf(b, "  tag:     %s is missing\n", printable(fb.Tag))
	default:
		fmt.Fprintf(b, "  tag:     %s is %s, %s\n", printable(fb.Tag), printable(fb.TagDigest), printable(fb.TagStatus))
	}
	fmt.Fprintf(b, "  fallback: %s from %s", printable(fb.Digest), printable(fb.Source))
	if fb.HeadSequence != 0 {
		fmt.Fprintf(b, " (head sequence %d)", fb.HeadSequence)
	}
	if fb.Age != "" {
		fmt.Fprintf(b, ", signed %s ago", printable(fb.Age))
	}
	b.WriteString("\n")
}
