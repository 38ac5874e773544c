package buildargs

import (
	"fmt"
	"sort"

	"github.com/docker-trustcache/docker-trustcache/internal/cachespec"
)

// Rewrite returns the argv for `docker buildx build`: the arguments given to
// Parse with trustcache's flags taken out and each --cache-from treated as
// pass says: pass[i] is what cache source i (its index in CacheFrom) is
// passed on as — the source itself, or its replacement (typically the
// verified spec pinned to its digest: type=registry,ref=REPO@sha256:…).
//
// A source with no entry in pass is removed: no cache reaches buildx unless
// a decision let it. Every other token is kept byte for byte and in order.
// A --cache-from whose sources are all passed on unchanged is kept as
// written. Otherwise each of its sources that is passed on becomes its own
// --cache-from in the same form (one token "--cache-from=SPEC" or two tokens
// "--cache-from" "SPEC"), written with cachespec.Spec.String, and a flag with no
// source left disappears with its value. A --cache-from with an empty value
// has no source and is kept: buildx ignores it.
//
// Rewrite fails on a key that is not an index in CacheFrom, and on a
// replacement spec with an empty type or that would not read back the same
// (see cachespec.Spec).
func (inv *Invocation) Rewrite(pass map[int]cachespec.Spec) ([]string, error) {
	for _, i := range sortedKeys(pass) {
		spec := pass[i]
		if i < 0 || i >= len(inv.srcs) {
			return nil, fmt.Errorf("decision for cache source %d: there are %d", i, len(inv.srcs))
		}
		if spec.Equal(inv.srcs[i].Spec) {
			continue
		}
		if spec.Type == "" {
			return nil, fmt.Errorf("decision for cache source %d (%s): replacement has no type", i, inv.srcs[i].Value)
		}
		back, err := cachespec.Parse(spec.String())
		if err != nil || !back.Equal(spec) {
			return nil, fmt.Errorf("decision for cache source %d (%s): replacement %q does not read back as written", i, inv.srcs[i].Value, spec.String())
		}
	}

	byToken := map[int][]int{} // token of a --cache-from → indexes of its sources
	for i, s := range inv.srcs {
		byToken[s.Token] = append(byToken[s.Token], i)
	}

	out := make([]string, 0, len(inv.toks))
	for t := 0; t < len(inv.toks); t++ {
		tok := inv.toks[t]
		switch tok.Kind {
		case KindTrustFlag, KindTrustValue:
			continue
		}
		srcs, ok := byToken[t]
		if !ok || tok.Kind != KindFlag {
			out = append(out, tok.Arg)
			continue
		}
		form := inv.srcs[srcs[0]].Form
		if form == FormSeparate {
			t++ // the value token, rewritten below
		}
		if inv.unchanged(srcs, pass) {
			out = append(out, tok.Arg)
			if form == FormSeparate {
				out = append(out, inv.toks[t].Arg)
			}
			continue
		}
		for _, i := range srcs {
			spec, ok := pass[i]
			if !ok {
				continue
			}
			if form == FormSeparate {
				out = append(out, "--cache-from", spec.String())
			} else {
				out = append(out, "--cache-from="+spec.String())
			}
		}
	}
	return out, nil
}

// unchanged says whether every source in srcs is passed on as written.
func (inv *Invocation) unchanged(srcs []int, pass map[int]cachespec.Spec) bool {
	for _, i := range srcs {
		if spec, ok := pass[i]; !ok || !spec.Equal(inv.srcs[i].Spec) {
			return false
		}
	}
	return true
}

func sortedKeys(m map[int]cachespec.Spec) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}
