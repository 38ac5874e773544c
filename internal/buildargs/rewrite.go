package buildargs

import (
	"fmt"
	"sort"
)

// Action is what Rewrite does with one cache source.
type Action int

const (
	// Remove drops the cache source. It is the zero Action, so a source
	// without a decision is dropped: Rewrite fails closed.
	Remove Action = iota
	// Keep passes the cache source on as written (for sources the policy
	// does not check, such as type=local, or audit/skip levels).
	Keep
	// Replace passes Decision.Spec on instead, typically the verified spec
	// pinned to its digest: type=registry,ref=REPO@sha256:…,<other attrs>.
	Replace
)

func (a Action) String() string {
	switch a {
	case Remove:
		return "remove"
	case Keep:
		return "keep"
	case Replace:
		return "replace"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Decision is the fate of one cache source. The zero Decision removes it.
type Decision struct {
	Action Action
	Spec   CacheSpec // the replacement, for Replace only
}

// Rewrite returns the argv for `docker buildx build`: the arguments given to
// Parse with trustcache's flags taken out and each --cache-from treated as
// decisions, keyed by index in CacheFrom, say.
//
// Every other token is kept byte for byte and in order. A --cache-from whose
// sources are all kept is kept as written. Otherwise each of its sources that
// is kept or replaced becomes its own --cache-from in the same form (one
// token "--cache-from=SPEC" or two tokens "--cache-from" "SPEC"), written with
// CacheSpec.String, and a flag with no source left disappears with its value.
//
// A source with no entry in decisions is removed, so no cache reaches buildx
// unless a decision let it. A --cache-from with an empty value has no source
// and is kept: buildx ignores it.
//
// Rewrite fails on a key that is not an index in CacheFrom, and on a
// replacement spec with an empty type or that would not read back the same
// (see CacheSpec).
func (inv *Invocation) Rewrite(decisions map[int]Decision) ([]string, error) {
	for _, i := range sortedKeys(decisions) {
		d := decisions[i]
		if i < 0 || i >= len(inv.srcs) {
			return nil, fmt.Errorf("decision for cache source %d: there are %d", i, len(inv.srcs))
		}
		switch d.Action {
		case Remove, Keep:
		case Replace:
			if d.Spec.Type == "" {
				return nil, fmt.Errorf("decision for cache source %d (%s): replacement has no type", i, inv.srcs[i].Value)
			}
			back, err := ParseCacheSpec(d.Spec.String())
			if err != nil || !back.Equal(d.Spec) {
				return nil, fmt.Errorf("decision for cache source %d (%s): replacement %q does not read back as written", i, inv.srcs[i].Value, d.Spec.String())
			}
		default:
			return nil, fmt.Errorf("decision for cache source %d (%s): unknown action %v", i, inv.srcs[i].Value, d.Action)
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
		if allKept(srcs, decisions) {
			out = append(out, tok.Arg)
			if form == FormSeparate {
				out = append(out, inv.toks[t].Arg)
			}
			continue
		}
		for _, i := range srcs {
			var spec CacheSpec
			switch d := decisions[i]; d.Action {
			case Keep:
				spec = inv.srcs[i].Spec
			case Replace:
				spec = d.Spec
			default:
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

func allKept(srcs []int, decisions map[int]Decision) bool {
	for _, i := range srcs {
		if decisions[i].Action != Keep {
			return false
		}
	}
	return true
}

func sortedKeys(m map[int]Decision) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}
