package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/decision"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// Verifier verifies a cache reference under a policy: *verify.Verifier.
type Verifier interface {
	Verify(ctx context.Context, ref string) (*verify.Result, error)
	Policy() *trustpolicy.Policy
}

// Endpoint serves verified caches to buildkitd, each build's under a
// scope of its own: *endpoint.Server, through EndpointFunc.
type Endpoint interface {
	NewScope() (Scope, error)
}

// Scope is the set of verified caches one build imports: *endpoint.Scope.
// Add returns the reference to import instead of repo@digest, served until
// Close.
type Scope interface {
	Adder
	Close()
}

// Adder registers a verified cache and returns the reference to import
// instead of repo@digest.
type Adder interface {
	Add(repo name.Repository, digest v1.Hash) (string, error)
}

// EndpointFunc adapts a function to Endpoint.
type EndpointFunc func() (Scope, error)

// NewScope calls f.
func (f EndpointFunc) NewScope() (Scope, error) { return f() }

// verifyConcurrency bounds the references of one request verified at once.
const verifyConcurrency = 8

// Decider decides the cache imports of a request under the current
// policy, and logs one line per import. It is safe for concurrent use.
type Decider struct {
	v   atomic.Pointer[verifierBox]
	ep  Endpoint
	log *slog.Logger
}

// verdictTTL is how long a verdict on a reference is reused. One build
// carries each import up to three times (Cache.Imports, the cache-imports
// attribute, the frontend's Solve), decided in separate calls a few
// milliseconds apart: they share one verification. A reused trusted
// verdict still pins its verified digest; a policy reload starts afresh.
const verdictTTL = 30 * time.Second

// maxMemo bounds the verdicts kept.
const maxMemo = 1024

// verifierBox is one policy's verifier and the verdicts it reached
// lately.
type verifierBox struct {
	Verifier
	mu   sync.Mutex
	memo map[string]*memoEntry
}

type memoEntry struct {
	done chan struct{} // closed when res and err are set
	at   time.Time
	res  *verify.Result
	err  error
}

// verify verifies ref, or reuses a verdict reached (or being reached) for
// it within verdictTTL. Inconclusive verdicts are not reused, nor missing
// ones: the build that pushes a new tag may end a moment later, and the
// next build must find it.
func (b *verifierBox) verify(ctx context.Context, ref string) (*verify.Result, error) {
	now := time.Now()
	b.mu.Lock()
	if e, ok := b.memo[ref]; ok && now.Sub(e.at) < verdictTTL {
		b.mu.Unlock()
		select {
		case <-e.done:
			return e.res, e.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if len(b.memo) >= maxMemo {
		for k, e := range b.memo {
			if now.Sub(e.at) >= verdictTTL {
				delete(b.memo, k)
			}
		}
	}
	e := &memoEntry{done: make(chan struct{}), at: now}
	if len(b.memo) < maxMemo {
		b.memo[ref] = e
	}
	b.mu.Unlock()
	e.res, e.err = b.Verifier.Verify(ctx, ref)
	close(e.done)
	if e.err != nil || e.res == nil || e.res.Verdict == verify.VerdictInconclusive || e.res.Verdict == verify.VerdictMissing {
		b.mu.Lock()
		if b.memo[ref] == e {
			delete(b.memo, ref)
		}
		b.mu.Unlock()
	}
	return e.res, e.err
}

// NewDecider returns a Decider verifying with v and serving what it
// trusts through ep, logging its decisions to log.
func NewDecider(v Verifier, ep Endpoint, log *slog.Logger) *Decider {
	d := &Decider{ep: ep, log: log}
	d.SetVerifier(v)
	return d
}

// Policy is the policy in force.
func (d *Decider) Policy() *trustpolicy.Policy { return d.v.Load().Policy() }

// SetVerifier replaces the verifier (a new policy) for the requests that
// arrive from now on.
func (d *Decider) SetVerifier(v Verifier) {
	d.v.Store(&verifierBox{Verifier: v, memo: map[string]*memoEntry{}})
}

// outcome is the decision on one import, with what the log says about it.
type outcome struct {
	Decision
	reason string
	res    *verify.Result
}

// Decide decides imps, the imports of one call of method by client; the
// trusted ones are served through into (the build's scope). The error, a
// gRPC status with codes.PermissionDenied, refuses the call: an import the
// policy says must fail the build (onUntrusted: fail).
func (d *Decider) Decide(ctx context.Context, client, method string, imps []Import, into Adder) ([]Decision, error) {
	return d.decideBuild(ctx, client, method, imps, into, nil)
}

// decideBuild is Decide for a call of the build bt follows (nil: none):
// an import the build's calls decided already the same way is not logged
// again, and each new decision is queued for the build's progress stream.
func (d *Decider) decideBuild(ctx context.Context, client, method string, imps []Import, into Adder, bt *buildTalk) ([]Decision, error) {
	if bt == nil {
		// Still one line per import of the call: a Control.Solve carries
		// each twice (Cache.Imports, the cache-imports attribute).
		bt = &buildTalk{logged: map[string]string{}}
	}
	v := d.v.Load()
	outs := make([]outcome, len(imps))
	var g errgroup.Group
	g.SetLimit(verifyConcurrency)
	for i, imp := range imps {
		g.Go(func() error {
			outs[i] = d.decide(ctx, v, imp, into)
			return nil
		})
	}
	_ = g.Wait() // decide reports its failures in outs[i]
	decisions := make([]Decision, len(imps))
	var blocked []string
	named := map[string]bool{} // the caches blocked: each is named once
	for i, o := range outs {
		decisions[i] = o.Decision
		if bt.first(imps[i], o) {
			d.logDecision(ctx, client, method, imps[i], o)
			bt.tell(decisionLine(imps[i], o), decisionWarning(imps[i], o))
		}
		if ref := imps[i].Ref(); o.Action == decision.Blocked && !named[ref] {
			named[ref] = true
			blocked = append(blocked, fmt.Sprintf("cache %s is %s: %s", ref, o.res.Verdict, o.res.Reason()))
		}
	}
	if len(blocked) > 0 {
		return nil, status.Errorf(codes.PermissionDenied, "trustcache gateway: not building: %s (policy onUntrusted: fail)", strings.Join(blocked, "; "))
	}
	return decisions, nil
}

// decide maps one import's verification to its fate by the table
// "docker trustcache build" uses (verify/decision), with the verified
// content endpoint always in use.
func (d *Decider) decide(ctx context.Context, v *verifierBox, imp Import, into Adder) outcome {
	o := decision.Cache(ctx, v.Policy(), v.verify, imp.Type, imp.Ref())
	out := outcome{Decision: Decision{Action: o.Action}, reason: o.Reason, res: o.Result}
	if o.Action == decision.Used {
		pinned, err := serve(into, o.Result)
		if err != nil {
			out.Action, out.reason = decision.Dropped, "the verified content endpoint cannot serve it: "+err.Error()
			return out
		}
		out.Ref = pinned
	}
	return out
}

// serve registers the verified digest with the build's scope of the
// endpoint and returns the reference buildkitd imports instead.
func serve(into Adder, res *verify.Result) (string, error) {
	dig, err := name.NewDigest(res.Pinned())
	if err != nil {
		return "", err
	}
	h, err := v1.NewHash(dig.DigestStr())
	if err != nil {
		return "", err
	}
	return into.Add(dig.Context(), h)
}

// logDecision writes the decision line of one import: the same keys on
// every line. fallback is why the tag's own digest was not used (the
// fallback's tag status: missing, untrusted, inconclusive, rolledBack) and
// tagDigest what the tag pointed at, both "" when the tag's own digest was
// the verdict's.
func (d *Decider) logDecision(ctx context.Context, client, method string, imp Import, o outcome) {
	var digest, verdict, fallback, tagDigest string
	signers := []string{}
	if o.res != nil {
		digest, verdict = o.res.Digest, string(o.res.Verdict)
		for _, s := range o.res.Signers {
			signers = append(signers, s.Builder)
		}
		if fb := o.res.Fallback; fb != nil {
			fallback, tagDigest = fb.TagStatus, fb.TagDigest
		}
	}
	level := slog.LevelInfo
	if o.Action.Removes() {
		level = slog.LevelWarn
	}
	d.log.Log(ctx, level, "cache import",
		slog.String("client", client),
		slog.String("method", method),
		slog.String("where", imp.Where),
		slog.String("type", imp.Type),
		slog.String("ref", imp.Ref()),
		slog.String("digest", digest),
		slog.String("verdict", verdict),
		slog.String("action", o.Action.String()),
		slog.Any("signers", signers),
		slog.String("fallback", fallback),
		slog.String("tagDigest", tagDigest),
		slog.String("reason", o.reason),
	)
}
