package plugin

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/docker-trustcache/docker-trustcache/internal/atomicfile"
	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/internal/policyfile"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

func newPolicyCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "policy",
		Example: policyExample,
		Short:   "Write, check and explain the trust policy",
		Args:    noSubcommand,
		RunE:    showHelp,
	}
	cmd.AddCommand(newPolicyInitCommand(dockerCLI), newPolicyLintCommand(dockerCLI, env), newPolicyExplainCommand(dockerCLI, env))
	return cmd
}

func newPolicyInitCommand(dockerCLI command.Cli) *cobra.Command {
	return &cobra.Command{
		Use:     "init [FILE]",
		Example: policyInitExample,
		Short:   "Write a commented starter policy (default .trustcache.yaml)",
		Args:    maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := policyfile.FileName
			if len(args) == 1 {
				path = args[0]
			}
			if err := writeNewFile(path, trustpolicy.Starter(), 0o644); err != nil {
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

func newPolicyLintCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	var policyFlag string
	cmd := &cobra.Command{
		Use:     "lint [OPTIONS] [FILE]",
		Example: policyLintExample,
		Short:   "Check a policy file: every problem with its file, line and field",
		Long: `Check a policy file (default: the policy the other commands would use) and
print every problem found, each with its file, line and field. A valid policy
with keyless builders also gets a summary of its trusted root and of what each
identity matches. FILE and --trust-policy FILE are the same. Exit status 0
when the policy is valid, 2 when it is not.`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			flag := policyFlag
			if len(args) == 1 {
				if flag != "" && flag != args[0] {
					return withStatus(usagef("two policies: FILE %q and --trust-policy %q; check one at a time", args[0], flag))
				}
				flag = args[0]
			}
			path, err := findPolicy(env, flag, env.workDir(), dockerCLI.Err())
			var none *noPolicyError
			if errors.As(err, &none) {
				none.Positional = true
			}
			if err != nil {
				return withStatus(asUsage(err))
			}
			p, err := trustpolicy.Load(path)
			if err != nil {
				return withStatus(asUsage(err))
			}
			fmt.Fprintf(dockerCLI.Out(), "%s: ok\n", path)
			writeKeylessSummary(dockerCLI.Out(), p)
			return nil
		},
	}
	addPolicyFlag(cmd.Flags(), &policyFlag, "Policy file to check, as FILE (default: as for verify)")
	return cmd
}

// flagTrustPolicy is the policy flag of every command that takes a policy.
// build and bake parse theirs in internal/buildargs (buildargs.FlagPolicy),
// where --policy is buildx's own; everywhere else --policy is a synonym.
const flagTrustPolicy = "trust-policy"

// addPolicyFlag registers --trust-policy on flags, with --policy as its
// synonym (the name verify, sign, serve, explain and provenance had
// before): help lists the one name.
func addPolicyFlag(flags *pflag.FlagSet, p *string, usage string) {
	flags.StringVar(p, flagTrustPolicy, "", usage+"; --policy is a synonym")
	prev := flags.GetNormalizeFunc()
	flags.SetNormalizeFunc(func(f *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "policy" {
			return flagTrustPolicy
		}
		return prev(f, name)
	})
}

func newPolicyExplainCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	var opts verifyOptions
	cmd := &cobra.Command{
		Use:     "explain [OPTIONS] REF",
		Example: policyExplainExample,
		Short:   "Explain, rule by rule, why a cache is or is not trusted",
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
			p, err := loadPolicy(env, opts.policy, env.workDir(), dockerCLI.Err())
			if err != nil {
				return withStatus(err)
			}
			v, done := newVerifier(dockerCLI, env, p, true) // explain reads every signature
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
	addPolicyFlag(cmd.Flags(), &opts.policy, "Policy file (default: as for verify)")
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
func writeKeylessSummary(w io.Writer, p *trustpolicy.Policy) {
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
			trustpolicy.TimestampAny: "a timestamp authority (any)",
			trustpolicy.TimestampTSA: "a timestamp authority",
		}[id.RequireTimestamp])
		if len(b.Keys) > 0 {
			fmt.Fprintf(w, "; also %d key(s)", len(b.Keys))
		}
		fmt.Fprintln(w)
	}
}

// checkBuildxPolicyFlag stops a build or bake (command) whose --policy,
// buildx's source policy flag, names a trustcache policy: buildx would
// reject the file after trustcache verified the caches under another
// policy (or none), and the user meant --trust-policy.
func checkBuildxPolicyFlag(command string, flags []buildargs.FlagUse) error {
	for _, f := range flags {
		if f.Trust || f.Name != "policy" {
			continue
		}
		for _, path := range policyFlagFiles(f.Value) {
			if isTrustPolicy(path) {
				return usagef("docker trustcache %s --policy %s: --policy is buildx's build policy flag, and %s is a trustcache policy: did you mean --trust-policy %s?", command, f.Value, path, path)
			}
		}
	}
	return nil
}

// policyFlagFiles returns the files a buildx --policy value may name: the
// value itself, and the filename= of its CSV form.
func policyFlagFiles(value string) []string {
	files := []string{value}
	fields, err := csv.NewReader(strings.NewReader(value)).Read()
	if err != nil {
		return files
	}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok && strings.TrimSpace(k) == "filename" {
			files = append(files, v)
		}
	}
	return files
}

// maxPolicyProbe bounds what isTrustPolicy reads of a file.
const maxPolicyProbe = 1 << 20

// isTrustPolicy says whether path is a .yaml or .yml file that parses as a
// trustcache policy: a YAML mapping with a version and builders or scopes.
func isTrustPolicy(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
	default:
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPolicyProbe))
	if err != nil {
		return false
	}
	var top map[string]yaml.Node
	if yaml.Unmarshal(data, &top) != nil {
		return false
	}
	_, version := top["version"]
	_, builders := top["builders"]
	_, scopes := top["scopes"]
	return version && (builders || scopes)
}
