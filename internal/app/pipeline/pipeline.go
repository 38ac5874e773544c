package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
	"github.com/docker-trustcache/docker-trustcache/internal/cachespec"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/termtext"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/decision"
	"github.com/docker-trustcache/docker-trustcache/verify/provenance"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// Target is one build of a run: a build is a run of one target (Name
// ""), a bake a run of each target its definition resolves to.
type Target struct {
	Name      string           // the bake target; "" for a build
	CacheFrom []cachespec.Spec // what it imports, in order
	CacheTo   []cachespec.Spec // what it exports its cache to
	Pushes    bool             // whether it pushes its image
}

// Buildx runs buildx once for the whole run, as inv says; the caller
// (build or bake) knows its command line. Its error is the run's: a
// cli.StatusError carrying buildx's exit code passes through unchanged.
type Buildx func(ctx context.Context, inv Invocation) error

// Invocation is what a run asks of buildx.
type Invocation struct {
	// Pass[t] is what target t's cache-from entries are passed on to
	// buildx as, keyed by index in its CacheFrom: the entry as given, or
	// its replacement (pinned to the verified digest, through the
	// verified content endpoint). An entry without a key is dropped.
	Pass []map[int]cachespec.Spec
	// MetadataFile, when not "", is a --metadata-file to add: the run
	// reads from it what buildx exported.
	MetadataFile string
	// Env is environment to add (KEY=VALUE): the verified content
	// endpoint's credential, which never goes on buildx's command line.
	Env []string
}

// Signer signs what a run exported, with the key (or keyless identity)
// --sign loaded: the caller's, which knows the key and the registry.
type Signer interface {
	// Sign signs e once for each tag it was exported under (tags is [""]
	// when it has none), with the annotations ann plus the tag's, and
	// records it in the ledger where there is one.
	Sign(ctx context.Context, e Export, tags []string, ann map[string]string) error
	// Attest signs the provenance record st and attaches it to every
	// subject; it returns those it was attached to, also on failure.
	Attest(ctx context.Context, st provenance.Statement, subjects []Export) ([]Signed, error)
}

// Options are everything a run takes from its caller but the policy, the
// verifier and the targets.
type Options struct {
	// Command is "build" or "bake": the word the run's messages use.
	Command string
	// Trust is trustcache's own flags, as given.
	Trust buildargs.Options
	// MetadataFile is the user's --metadata-file ("" when none given).
	MetadataFile string
	// Builder is the user's --builder ("" for buildx's current one).
	Builder string
	// Version is trustcache's, for the provenance record.
	Version string
	// Getenv reads the environment (BUILDX_CONFIG, BUILDX_BUILDER,
	// DOCKER_AUTH_CONFIG, the CI's source context); nil reads none.
	Getenv func(string) string
	// DockerConfigDir is the docker config directory; buildx's store is
	// its buildx/ unless BUILDX_CONFIG says otherwise.
	DockerConfigDir string
	// Keychain gives the verified content endpoint the user's registry
	// credentials (default: anonymous).
	Keychain authn.Keychain
	// Stderr gets the warnings and the summary (nil: discarded).
	Stderr io.Writer
	// Buildx runs buildx.
	Buildx Buildx
	// LoadSigner loads the key --sign signs with, under policy p, before
	// buildx runs (a wrong password costs no build); what it signs it
	// records in v's ledger. p and v are nil without a policy.
	LoadSigner func(p *trustpolicy.Policy, v *verify.Verifier) (Signer, error)
	// Now is the clock of the provenance record (default time.Now).
	Now func() time.Time
}

// Pipeline runs builds under the trust policy with the options it was
// made with.
type Pipeline struct {
	o Options
}

// UsageError is a run refused for its options: nothing was built.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usagef(format string, args ...any) error {
	return &UsageError{fmt.Errorf(format, args...)}
}

// StoppedError is a run the trust policy did not let start: a cache it
// must not import (onUntrusted: fail), a signing run that would import a
// cache not verified trusted, a builder without verified bytes under
// requireVerifiedBytes. Status is decision.Untrusted or
// decision.Inconclusive.
type StoppedError struct {
	Command string // "build" or "bake"
	Status  decision.Status
	Reason  string
}

func (e *StoppedError) Error() string {
	verb := "building"
	if e.Command == "bake" {
		verb = "baking"
	}
	return "trustcache: not " + verb + ": " + e.Reason
}

// New returns a pipeline with options o, or a *UsageError when the
// trustcache options contradict each other (the --sign guard): signing
// options without --sign, an annotation trustcache sets itself.
func New(o Options) (*Pipeline, error) {
	t := o.Trust
	if !t.Sign && (t.Key != "" || len(t.SignAnnotations) > 0 || t.Keyless || t.IdentityToken != "" || t.SigningConfig != "") {
		return nil, usagef("--key, --keyless, --identity-token, --signing-config and --sign-annotation need --sign")
	}
	for k := range t.SignAnnotations {
		if signature.Reserved(k) {
			return nil, usagef("--sign-annotation %s: %q is set by docker trustcache itself", k, k)
		}
	}
	if t.Sign && o.LoadSigner == nil {
		return nil, errors.New("pipeline: --sign without a LoadSigner")
	}
	if o.Buildx == nil {
		return nil, errors.New("pipeline: no Buildx")
	}
	if o.Command == "" {
		o.Command = "build"
	}
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	if o.Keychain == nil {
		o.Keychain = authn.NewMultiKeychain()
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Pipeline{o: o}, nil
}

// run is one run's state.
type run struct {
	*Pipeline
	policy   *trustpolicy.Policy
	verifier *verify.Verifier
	targets  []Target
	report   *Report
}

// Run runs targets under policy p, verifying with v (both nil when there
// is no policy: then no target may import a cache). It returns buildx's
// error, or why the run stopped: a *UsageError, a *StoppedError, or a
// failure to sign or record what was built. The summary and the report
// are written whatever the outcome.
func (pl *Pipeline) Run(ctx context.Context, p *trustpolicy.Policy, v *verify.Verifier, targets []Target) error {
	r := &run{Pipeline: pl, policy: p, verifier: v, targets: targets, report: &Report{command: pl.o.Command}}
	if (p == nil || v == nil) && imports(targets) {
		return errors.New("pipeline: caches to import and no policy to verify them")
	}
	if p != nil {
		r.report.Policy = p.File
	}
	plan, err := planExports(targets, pl.o.Trust.Sign)
	if err != nil {
		return err
	}
	var signer Signer
	if pl.o.Trust.Sign {
		if signer, err = pl.o.LoadSigner(p, v); err != nil {
			return err
		}
	}
	pass, err := r.decide(ctx)
	if err != nil {
		return r.fail(err)
	}
	if signer != nil {
		if why := unverifiedImports(r.report.Caches); why != "" {
			r.report.NotSigned = why
			return r.fail(&StoppedError{Command: pl.o.Command, Status: decision.Untrusted, Reason: why})
		}
	}
	return r.build(ctx, pass, plan, signer)
}

// build runs buildx with the caches decided (through the verified content
// endpoint where it can), then signs and records what it exported.
func (r *run) build(ctx context.Context, pass []map[int]cachespec.Spec, plan *exportPlan, signer Signer) error {
	ep, err := r.serve(ctx, pass)
	if err != nil {
		return r.fail(err)
	}
	inv := Invocation{Pass: pass}
	if ep != nil {
		defer ep.Close()
		inv.Env = r.endpointEnv(ep) // its credential: never on argv
	}
	// The exports are read back for --sign and for the provenance record
	// of --trust-report; a run that wants neither runs as given.
	record := signer != nil || r.o.Trust.Report != ""
	if record && !plan.empty() && r.o.MetadataFile == "" {
		md, cleanup, err := tempMetadataFile()
		if err != nil {
			return r.fail(err)
		}
		defer cleanup()
		inv.MetadataFile = md
	}
	buildErr := r.o.Buildx(ctx, inv)
	r.report.ran, r.report.Built = true, buildErr == nil
	r.noteRefused(ep)
	if buildErr == nil && record {
		mdFile := r.o.MetadataFile
		if mdFile == "" {
			mdFile = inv.MetadataFile
		}
		if err := r.signAndRecord(ctx, plan, mdFile, signer); err != nil {
			return r.fail(err)
		}
	}
	return r.finish(buildErr)
}

// fail ends a run that stopped (or whose exports could not be signed or
// recorded) on err: the summary says what was decided, the report is
// written, and err is returned. A report that cannot be written is
// warned about: err, not the report's error, is the run's.
func (r *run) fail(err error) error {
	r.report.Summary(r.o.Stderr)
	if werr := r.report.WriteFile(r.o.Trust.Report); werr != nil {
		fmt.Fprintf(r.o.Stderr, "WARNING: trustcache: the trust report was not written: %s\n", termtext.Line(werr.Error()))
	}
	return err
}

// finish ends a run in which buildx ran: buildErr is buildx's own; when
// it succeeded, a report that cannot be written fails the run.
func (r *run) finish(buildErr error) error {
	if buildErr != nil {
		return r.fail(buildErr)
	}
	r.report.Summary(r.o.Stderr)
	return r.report.WriteFile(r.o.Trust.Report)
}

// imports says whether any target imports a cache.
func imports(targets []Target) bool {
	for _, t := range targets {
		if len(t.CacheFrom) > 0 {
			return true
		}
	}
	return false
}
