package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/docker-trustcache/docker-trustcache/internal/cli"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/provenance"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// maxProvenanceDepth bounds --depth.
const maxProvenanceDepth = 16

type provenanceOptions struct {
	policy   string
	format   string
	depth    int
	noLedger bool
}

func newProvenanceCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	var opts provenanceOptions
	cmd := &cobra.Command{
		Use:     "provenance [OPTIONS] REF",
		Example: provenanceExample,
		Short:   "Show the verified record of what an image or cache was built from",
		Long: `Read the provenance records attached to REF's digest (an image or cache that
docker trustcache build --sign pushed) and show each with its check under the
policy: signed by a builder REF's scope allows, naming REF's digest, and each
cache the build imported — reference, pinned digest, verdict and signers as
recorded, and whether that digest verifies now. With --depth N, the records
of those imports are shown and checked too, N levels down.

A missing, malformed or unsigned record is a reason in the output. The walk
is bounded by the scope's maxDepth (or --depth, if larger) and maxRequests
(defaults 3 and 200).

Exit status: 0 when a record of REF holds; 3 when none does; 4 when a
registry or network failure left it undecided; 5 when REF is a tag that
does not exist; 2 for a usage or configuration error.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.format != "text" && opts.format != "json" {
				return withStatus(usagef("--format: unknown format %q (want text or json)", opts.format))
			}
			if opts.depth < 0 || opts.depth > maxProvenanceDepth {
				return withStatus(usagef("--depth: %d is out of range (want 0 to %d)", opts.depth, maxProvenanceDepth))
			}
			p, err := loadPolicy(env, opts.policy, env.workDir(), dockerCLI.Err())
			if err != nil {
				return withStatus(err)
			}
			v, done := newVerifier(dockerCLI, env, p, opts.noLedger)
			defer done()
			node, err := v.Provenance(cmd.Context(), args[0], verify.ProvenanceOptions{Depth: opts.depth})
			if err != nil {
				return withStatus(asUsage(err))
			}
			if opts.format == "json" {
				err = json.NewEncoder(dockerCLI.Out()).Encode(node)
			} else {
				err = renderProvenance(dockerCLI.Out(), p, args[0], node)
			}
			if err != nil {
				return err
			}
			return provenanceStatus(node)
		},
	}
	flags := cmd.Flags()
	addPolicyFlag(flags, &opts.policy, "Policy file (default: as for verify)")
	flags.StringVar(&opts.format, "format", "text", `Output format: "text" or "json"`)
	flags.IntVar(&opts.depth, "depth", 0, "Also show the records of the imported caches, this many levels down")
	flags.BoolVar(&opts.noLedger, "no-ledger", false, "Re-verify imports without the local ledger of digests verified before")
	return cmd
}

// provenanceStatus is the exit code of a provenance walk.
func provenanceStatus(n *verify.ProvenanceNode) error {
	switch {
	case n.OK:
		return nil
	case n.Inconclusive:
		return cli.StatusError{StatusCode: ExitInconclusive}
	case n.Missing:
		return cli.StatusError{StatusCode: ExitMissing}
	}
	return cli.StatusError{StatusCode: ExitUntrusted}
}

// nodeVerdict is a node's outcome in a word.
func nodeVerdict(n *verify.ProvenanceNode) string {
	switch {
	case n.OK:
		return "verified record"
	case n.Inconclusive:
		return "inconclusive"
	case n.Missing:
		return "missing"
	}
	return "no verified record"
}

// renderProvenance writes the text form of a provenance walk.
func renderProvenance(w io.Writer, p *trustpolicy.Policy, ref string, n *verify.ProvenanceNode) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", printable(ref), nodeVerdict(n))
	fmt.Fprintf(&b, "  policy:    %s (%s)\n", printable(p.File), p.Fingerprint(nil))
	renderNode(&b, p, n, "  ")
	_, err := io.WriteString(w, b.String())
	return err
}

func renderNode(b *strings.Builder, p *trustpolicy.Policy, n *verify.ProvenanceNode, in string) {
	if n.Digest != "" {
		fmt.Fprintf(b, "%sdigest:    %s\n", in, printable(n.Digest))
	}
	for _, r := range n.Records {
		mark := "FAIL"
		if r.OK {
			mark = "ok"
		}
		fmt.Fprintf(b, "%srecord:    %s: %s\n", in, printable(r.Source), mark)
		rin := in + "  "
		if r.Signer != nil {
			fmt.Fprintf(b, "%ssigned by: %s %s\n", rin, printable(r.Signer.Builder), printable(r.Signer.KeyID))
		}
		if pr := r.Record; pr != nil {
			renderPredicate(b, p, pr, rin)
		}
		for _, imp := range r.Imports {
			renderImport(b, p, imp, rin)
		}
		for _, reason := range r.Reasons {
			fmt.Fprintf(b, "%sreason:    %s\n", rin, printable(reason))
		}
	}
	for _, reason := range n.Reasons {
		fmt.Fprintf(b, "%sreason:    %s\n", in, printable(reason))
	}
}

func renderPredicate(b *strings.Builder, p *trustpolicy.Policy, pr *provenance.Predicate, in string) {
	pol := "none recorded"
	if d := pr.Policy.Digest; d != "" {
		pol = d + " (another policy)"
		if d == p.Fingerprint(nil) {
			pol = d + " (this policy)"
		}
	}
	fmt.Fprintf(b, "%spolicy:    %s\n", in, printable(pol))
	var src []string
	for _, s := range []string{pr.Source.Repository, pr.Source.Ref, pr.Source.Commit, pr.Source.Run} {
		if s != "" {
			src = append(src, s)
		}
	}
	if len(src) > 0 {
		fmt.Fprintf(b, "%ssource:    %s\n", in, printable(strings.Join(src, " ")))
	}
	if pr.BuiltAt != "" || pr.Trustcache != "" {
		fmt.Fprintf(b, "%sbuilt:     %s by trustcache %s\n", in, printable(pr.BuiltAt), printable(pr.Trustcache))
	}
	if len(pr.Caches) == 0 {
		fmt.Fprintf(b, "%simports:   none\n", in)
	}
}

func renderImport(b *strings.Builder, p *trustpolicy.Policy, imp verify.ImportResult, in string) {
	fmt.Fprintf(b, "%simport:    %s\n", in, printable(imp.Reference))
	iin := in + "  "
	recorded := imp.Action
	if imp.Verdict != "" {
		recorded = imp.Verdict + ", " + recorded
	}
	if imp.Guarantee != "" {
		recorded += " (" + imp.Guarantee + ")"
	}
	if len(imp.Signers) > 0 {
		names := make([]string, len(imp.Signers))
		for i, s := range imp.Signers {
			names[i] = s.Builder
		}
		recorded += ", signed by " + strings.Join(names, ", ")
	}
	if imp.Digest != "" {
		fmt.Fprintf(b, "%spinned:    %s\n", iin, printable(imp.Digest))
	}
	fmt.Fprintf(b, "%srecorded:  %s\n", iin, printable(recorded))
	mark := "FAIL"
	if imp.OK {
		mark = "ok"
	}
	fmt.Fprintf(b, "%snow:       %s: %s\n", iin, mark, printable(imp.Reason))
	if imp.Chain != nil {
		fmt.Fprintf(b, "%schain:     %s: %s\n", iin, printable(imp.Chain.Reference), nodeVerdict(imp.Chain))
		renderNode(b, p, imp.Chain, iin+"  ")
	}
}
