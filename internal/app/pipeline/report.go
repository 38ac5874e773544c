package pipeline

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/docker-trustcache/docker-trustcache/internal/atomicfile"
	"github.com/docker-trustcache/docker-trustcache/internal/termtext"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/decision"
	"github.com/docker-trustcache/docker-trustcache/verify/provenance"
)

// The guarantee a used registry cache had on its way into BuildKit
// (Cache.Guarantee).
const (
	// GuaranteeVerifiedBytes: BuildKit read it from the verified content
	// endpoint, which hands out only bytes whose digests it checked
	// against the verified manifest digest.
	GuaranteeVerifiedBytes = "verified-bytes"
	// GuaranteeDigestPin: BuildKit was told the verified digest and
	// fetched it from the registry itself: BuildKit does not check a cache
	// manifest or cache config against the digest, so a registry that
	// lies about the content of a digest is not stopped.
	GuaranteeDigestPin = "digest-pin"
)

// Report is the trust report of a run: Summary writes it for people,
// WriteFile as JSON (--trust-report).
type Report struct {
	Policy string   `json:"policy"`
	Caches []Cache  `json:"caches"`
	Signed []Signed `json:"signed,omitempty"`
	// NotSigned says why a run asked to --sign signed nothing.
	NotSigned string `json:"notSigned,omitempty"`
	Built     bool   `json:"built"`
	// Provenance is the run's provenance record (docs/provenance.md);
	// Attested, the subjects --sign attached it to, signed.
	Provenance *provenance.Statement `json:"provenance,omitempty"`
	Attested   []Signed              `json:"attested,omitempty"`

	// For the summary: the command ("build" or "bake") and whether
	// buildx ran (Built says whether it succeeded).
	command string
	ran     bool
}

// Cache is what the run did with one cache-from of one target.
type Cache struct {
	Source string          `json:"source"`           // the source as given
	Target string          `json:"target,omitempty"` // the bake target importing it (bake only)
	Type   string          `json:"type"`
	Action decision.Action `json:"action"`
	Pinned string          `json:"pinned,omitempty"` // the verified REPO@DIGEST, for used registry caches
	// Guarantee is how a used registry cache reached BuildKit:
	// GuaranteeVerifiedBytes or GuaranteeDigestPin.
	Guarantee string `json:"guarantee,omitempty"`
	// Refused is what the verified content endpoint kept from BuildKit
	// (content that did not match its digest, or that the registry did not
	// serve), so BuildKit ran without it.
	Refused []string       `json:"refused,omitempty"`
	Reason  string         `json:"reason,omitempty"`
	Result  *verify.Result `json:"result,omitempty"`
}

// Signed is one digest the run signed, or attached its record to.
type Signed struct {
	Reference string `json:"reference"` // REPO@DIGEST
	Kind      string `json:"kind"`      // cache or image
}

// Summary writes the trust summary to w (stderr): nothing when the run
// decided no cache and signed nothing.
func (r *Report) Summary(w io.Writer) {
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
		fmt.Fprintf(&b, "  policy   %s\n", termtext.Line(r.Policy))
	} else {
		b.WriteString("  policy   none found: no cache was imported, and what was signed is not recorded in the ledger\n")
	}
	for _, c := range r.Caches {
		if c.Action == decision.Used {
			r.writeUsed(&b, c)
			continue
		}
		fmt.Fprintf(&b, "  %-8s %s\n           %s\n", c.Action, source(c), termtext.Line(c.Reason))
	}
	for _, s := range r.Signed {
		fmt.Fprintf(&b, "  signed   %s (%s)\n", termtext.Line(s.Reference), s.Kind)
	}
	for _, a := range r.Attested {
		fmt.Fprintf(&b, "  attested %s (provenance record)\n", termtext.Line(a.Reference))
	}
	if r.NotSigned != "" {
		fmt.Fprintf(&b, "  nothing signed: %s\n", termtext.Line(r.NotSigned))
	}
	io.WriteString(w, b.String())
}

// source is how the summary names a cache: its source, after its target
// in a bake.
func source(c Cache) string {
	if c.Target != "" {
		return "target " + termtext.Line(c.Target) + ": " + termtext.Line(c.Source)
	}
	return termtext.Line(c.Source)
}

// writeUsed writes the summary lines of a used cache: "used" only for a
// run that succeeded (a cache passed on to a build that failed or never
// ran was not used), with its pin, guarantee, signers and fallback.
func (r *Report) writeUsed(b *strings.Builder, c Cache) {
	label := "used"
	switch {
	case r.Built:
	case c.Result != nil && c.Result.Trusted:
		label = "verified"
	default:
		label = "audited"
	}
	fmt.Fprintf(b, "  %-8s %s\n           pinned to %s", label, source(c), termtext.Line(c.Pinned))
	switch c.Guarantee {
	case GuaranteeVerifiedBytes:
		b.WriteString(" (verified bytes)")
	case GuaranteeDigestPin:
		b.WriteString(" (digest pin only)")
	}
	if c.Result != nil && len(c.Result.Signers) > 0 {
		names := make([]string, len(c.Result.Signers))
		for i, s := range c.Result.Signers {
			names[i] = s.Builder
		}
		fmt.Fprintf(b, ", signed by %s", termtext.Line(strings.Join(names, ", ")))
	}
	if c.Reason != "" {
		fmt.Fprintf(b, "\n           %s", termtext.Line(c.Reason))
	}
	if c.Result != nil && c.Result.Fallback != nil { // docs/fallback.md
		fb := c.Result.Fallback
		fmt.Fprintf(b, "\n           fallback: tag %s is %s %s; its last trusted digest (from %s) is used", termtext.Line(fb.Tag), fb.TagStatus, termtext.Line(fb.TagDigest), fb.Source)
	}
	for _, refused := range c.Refused {
		fmt.Fprintf(b, "\n           not passed on to BuildKit: %s", termtext.Line(refused))
	}
	b.WriteString("\n")
}

// WriteFile writes the report as JSON to path (nothing when path is
// empty), atomically.
func (r *Report) WriteFile(path string) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o644)
}
