package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/atomicfile"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/verify"
)

func newPolicyCommand(dockerCLI command.Cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Write, check and explain the trust policy",
		Args:  noSubcommand,
		RunE:  showHelp,
	}
	cmd.AddCommand(newPolicyInitCommand(dockerCLI), newPolicyLintCommand(dockerCLI), newPolicyExplainCommand(dockerCLI))
	return cmd
}

func newPolicyInitCommand(dockerCLI command.Cli) *cobra.Command {
	return &cobra.Command{
		Use:   "init [FILE]",
		Short: "Write a commented starter policy (default .trustcache.yaml)",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := policyFileName
			if len(args) == 1 {
				path = args[0]
			}
			if err := writeNewFile(path, verify.StarterPolicy(), 0o644); err != nil {
				return withStatus(err)
			}
			fmt.Fprintf(dockerCLI.Err(), "Wrote %s: add your builders' public keys and cache repositories, then run docker trustcache policy lint\n", path)
			return nil
		},
	}
}

// writeNewFile writes data to a new file at path; it never overwrites.
func writeNewFile(path string, data []byte, mode os.FileMode) error {
	err := atomicfile.WriteNew(path, data, mode)
	switch {
	case errors.Is(err, fs.ErrExist):
		return usagef("%s already exists; not overwriting it", path)
	case atomicfile.IsCreateError(err):
		return asUsage(err)
	}
	return err
}

func newPolicyLintCommand(dockerCLI command.Cli) *cobra.Command {
	return &cobra.Command{
		Use:   "lint [FILE]",
		Short: "Check a policy file: every problem with its file, line and field",
		Long: `Check a policy file (default: the policy the other commands would use) and
print every problem found, each with its file, line and field. A valid policy
with keyless builders also gets a summary of its trusted root and of what each
identity matches. Exit status 0 when the policy is valid, 2 when it is not.`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			flag := ""
			if len(args) == 1 {
				flag = args[0]
			}
			path, err := findPolicy(flag, ".", dockerCLI.Err())
			if err != nil {
				return withStatus(asUsage(err))
			}
			p, err := verify.LoadPolicy(path)
			if err != nil {
				return withStatus(asUsage(err))
			}
			fmt.Fprintf(dockerCLI.Out(), "%s: ok\n", path)
			writeKeylessSummary(dockerCLI.Out(), p)
			return nil
		},
	}
}

func newPolicyExplainCommand(dockerCLI command.Cli) *cobra.Command {
	var opts verifyOptions
	cmd := &cobra.Command{
		Use:   "explain [OPTIONS] REF",
		Short: "Explain, rule by rule, why a cache is or is not trusted",
		Long: `Verify REF and print every step of the decision: which scope matched (and
which less specific ones also did), the digest, and for each signature every
rule in order — key (or, for a keyless signature, identity: the certificate
verified against the trusted root and matched to an identity builder),
revocation, allowed builder, digest, repository, age (of the verified time for
keyless signatures), annotations — with whether it held. Exit status as for
verify.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.format != "text" && opts.format != "json" {
				return withStatus(usagef("--format: unknown format %q (want text or json)", opts.format))
			}
			p, err := loadPolicy(opts.policy, ".", dockerCLI.Err())
			if err != nil {
				return withStatus(err)
			}
			v, done := newVerifier(dockerCLI, p, true) // explain reads every signature
			defer done()
			res, err := v.Explain(cmd.Context(), args[0])
			if err != nil {
				return withStatus(asUsage(err))
			}
			if opts.format == "json" {
				err = json.NewEncoder(dockerCLI.Out()).Encode(res)
			} else {
				err = renderExplanation(dockerCLI.Out(), p.File, res)
			}
			if err != nil {
				return err
			}
			return verifyStatus([]*verify.Result{res})
		},
	}
	cmd.Flags().StringVar(&opts.policy, "policy", "", "Policy file (default: as for verify)")
	cmd.Flags().StringVar(&opts.format, "format", "text", `Output format: "text" or "json"`)
	return cmd
}

// renderExplanation writes the rule-by-rule text form of an explained
// result.
func renderExplanation(w io.Writer, policyFile string, r *verify.Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "policy:      %s\n", printable(policyFile))
	fmt.Fprintf(&b, "reference:   %s\n", printable(r.Reference))
	fmt.Fprintf(&b, "repository:  %s\n", printable(r.Repository))
	if r.Scope == "" {
		b.WriteString("scope:       none matches: untrusted\n")
	} else {
		fmt.Fprintf(&b, "scope:       %s (level %s, threshold %d, on untrusted %s)\n", printable(r.Scope), r.Level, r.Threshold, r.OnUntrusted)
		for _, o := range r.OtherScopes {
			fmt.Fprintf(&b, "             also matches, less specific: %s\n", printable(o))
		}
	}
	if r.Digest != "" {
		fmt.Fprintf(&b, "digest:      %s\n", printable(r.Digest))
	}
	for _, sc := range r.Checks {
		fmt.Fprintf(&b, "signature    %s (%s)\n", printable(sc.Source), printable(sc.Format))
		for _, c := range sc.Checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(&b, "  %s %-12s %s\n", mark, c.Rule, printable(c.Detail))
		}
		if s := sc.Signer; s != nil && s.Certificate != "" {
			fmt.Fprintf(&b, "  => counts for builder %s (keyless: %s, issuer %s, verified time %s)\n", printable(s.Builder), printable(s.Subject), printable(s.Issuer), printable(s.SignedAt))
		} else if sc.Signer != nil {
			fmt.Fprintf(&b, "  => counts for builder %s\n", printable(sc.Signer.Builder))
		} else {
			b.WriteString("  => does not count\n")
		}
	}
	fmt.Fprintf(&b, "verdict:     %s", r.Verdict)
	if len(r.Signers) > 0 {
		names := make([]string, len(r.Signers))
		for i, s := range r.Signers {
			names[i] = s.Builder
		}
		fmt.Fprintf(&b, " (signed by %s)", printable(strings.Join(names, ", ")))
	}
	b.WriteString("\n")
	for _, reason := range r.Reasons {
		if !strings.Contains(reason, ".sig layer") {
			fmt.Fprintf(&b, "             %s\n", printable(reason))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeKeylessSummary writes, for a policy with keyless builders, its
// trusted root and what each identity builder matches; nothing otherwise.
func writeKeylessSummary(w io.Writer, p *verify.Policy) {
	if p.TrustedRoot == "" {
		return
	}
	fmt.Fprintf(w, "trustedRoot: %s (%s; %s)\n", printable(p.TrustedRoot), p.TrustedRootSummary(), p.TrustedRootDigest())
	for _, b := range p.Builders {
		id := b.Identity
		if id == nil {
			continue
		}
		fmt.Fprintf(w, "builder %s: keyless identity, issuer %s, subject %s", printable(b.Name), printable(id.Issuer), printable(id.Subject))
		for _, c := range id.ClaimNames() {
			fmt.Fprintf(w, ", %s %s", c, printable(id.Claims[c]))
		}
		fmt.Fprintf(w, ", verified time from %s", map[string]string{
			verify.TimestampAny: "a timestamp authority (any)",
			verify.TimestampTSA: "a timestamp authority",
		}[id.RequireTimestamp])
		if len(b.Keys) > 0 {
			fmt.Fprintf(w, "; also %d key(s)", len(b.Keys))
		}
		fmt.Fprintln(w)
	}
}
