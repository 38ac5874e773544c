package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// The fallback's slow path (docs/fallback.md): with no head record to
// follow (caches signed by cosign, or keylessly), the repository's tag
// list is read and the digests that carry signature tags are verified for
// the tag; the newest trusted one wins. Every dimension is bounded: a
// registry that lists forever, junk tags by the thousand or signature
// lists that fail cost at most these, then the scan stops with what it
// has — no cache at worst, never an untrusted one.
const (
	// MaxScanTags bounds the tag names read from the list.
	MaxScanTags = 1000
	// MaxScanPages bounds the tag list pages requested.
	MaxScanPages = 10
	// MaxScanCandidates bounds the digests verified.
	MaxScanCandidates = 32
	// MaxScanRequests bounds the registry requests of one scan, the
	// listing and every candidate's verification included.
	MaxScanRequests = 256
	// ScanTimeout bounds one scan (within the verification's own
	// deadline).
	ScanTimeout = 30 * time.Second
	// scanConcurrency bounds the candidates verified at once.
	scanConcurrency = 4
)

// ErrScanBudget is the error of a request past MaxScanRequests.
var ErrScanBudget = errors.New("the fallback scan's request budget is spent")

// scanBudget counts the requests of a scan (found in the request's
// context).
type scanBudget struct {
	limit int64
	used  atomic.Int64
}

type scanBudgetKey struct{}

// spent reports whether the budget ran out.
func (b *scanBudget) spent() bool { return b.used.Load() >= b.limit }

// scanBudgetTransport refuses the requests of a scan past its budget.
type scanBudgetTransport struct{ next http.RoundTripper }

func (t scanBudgetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if b, _ := req.Context().Value(scanBudgetKey{}).(*scanBudget); b != nil && b.used.Add(1) > b.limit {
		return nil, fmt.Errorf("%w (%d requests)", ErrScanBudget, b.limit)
	}
	return t.next.RoundTrip(req)
}

// scan looks through the repository's signature tags for the newest digest
// trusted for tag, not older than rec's (exclude is the tag's own digest,
// already refused). It returns the verification of the one found, or nil
// and why not.
func (v *Verifier) scan(ctx context.Context, repo name.Repository, canon, tag string, scope *trustpolicy.Scope, exclude string, rec *tagRecord, p *registry.Puller) (*Result, string) {
	ctx, cancel := context.WithTimeout(ctx, ScanTimeout)
	defer cancel()
	budget := &scanBudget{limit: MaxScanRequests}
	ctx = context.WithValue(ctx, scanBudgetKey{}, budget)
	ropts, err := p.Options(ctx)
	if err != nil {
		return nil, "scan: " + err.Error()
	}
	puller, err := remote.NewPuller(ropts...)
	if err != nil {
		return nil, "scan: " + err.Error()
	}

	var cands []string
	seen := map[string]bool{exclude: true}
	names, pages := 0, 0
	var stopped string
	lister, err := puller.Lister(ctx, repo)
	for err == nil && lister.HasNext() {
		if pages == MaxScanPages || names >= MaxScanTags {
			stopped = fmt.Sprintf("listing stopped after %d tags in %d pages", names, pages)
			break
		}
		var page *remote.Tags
		if page, err = lister.Next(ctx); err != nil {
			break
		}
		pages++
		for _, n := range page.Tags {
			if names++; names > MaxScanTags {
				names = MaxScanTags
				stopped = fmt.Sprintf("listing stopped after %d tags", MaxScanTags)
				break
			}
			if d := signatureTagDigest(n); d != "" && !seen[d] {
				seen[d] = true
				cands = append(cands, d)
			}
		}
	}
	if err != nil {
		return nil, fmt.Sprintf("scan: listing the tags of %s: %v", canon, err)
	}
	if len(cands) > MaxScanCandidates {
		stopped = strings.TrimPrefix(stopped+fmt.Sprintf("; %d signed digests found, the first %d verified", len(cands), MaxScanCandidates), "; ")
		cands = cands[:MaxScanCandidates]
	}

	var floor time.Time
	var recDigest string
	if rec != nil {
		floor, recDigest = rec.SignedAt, rec.Digest
	}
	// The candidates are verified scanConcurrency at a time; one not
	// started before the budget or the time ran out is not verified.
	results := make([]*Result, len(cands))
	var started atomic.Int64
	var g errgroup.Group
	g.SetLimit(scanConcurrency)
	for i, d := range cands {
		if ctx.Err() != nil || budget.spent() {
			break
		}
		started.Add(1)
		g.Go(func() error {
			results[i] = v.verifyForTag(ctx, repo, canon, d, scope, tag, p)
			return nil
		})
	}
	_ = g.Wait()
	verified := int(started.Load())
	if verified < len(cands) || budget.spent() {
		stopped = strings.TrimPrefix(stopped+fmt.Sprintf("; stopped after %d of %d candidates (%d requests, %s bound)", verified, len(cands), budget.used.Load(), ScanTimeout), "; ")
	}
	var best *Result
	var bestAt time.Time
	for i, cres := range results {
		if cres == nil || !cres.Trusted {
			continue
		}
		at := newestSigned(cres.Signers)
		if cands[i] != recDigest && !notOlder(at, floor) {
			continue
		}
		if best == nil || at.After(bestAt) {
			best, bestAt = cres, at
		}
	}
	if best != nil {
		return best, ""
	}
	note := fmt.Sprintf("scan: none of %d signed digests in %d tags is trusted for the tag", verified, names)
	if stopped != "" {
		note += " (" + stopped + ")"
	}
	return nil, note
}

// signatureTagDigest returns the digest a signature tag is for —
// "sha256-HEX.sig" (cosign's signatures) or "sha256-HEX" (the referrers tag
// of bundles) — or "".
func signatureTagDigest(tag string) string {
	hex, ok := strings.CutPrefix(tag, "sha256-")
	if !ok {
		return ""
	}
	hex = strings.TrimSuffix(hex, ".sig")
	if len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return ""
	}
	return "sha256:" + hex
}
