package trustpolicy

// Defaults and bounds of a scope's provenance rule.
const (
	// DefaultProvenanceMaxDepth is how many levels of imports below a
	// cache the chain walk re-verifies when the scope sets no maxDepth.
	DefaultProvenanceMaxDepth = 3
	// DefaultProvenanceMaxRequests is how many registry requests one chain
	// walk may make when the scope sets no maxRequests.
	DefaultProvenanceMaxRequests = 200
	// maxProvenanceDepth and maxProvenanceRequests bound what a policy may
	// set.
	maxProvenanceDepth    = 16
	maxProvenanceRequests = 10000
)

// ProvenanceRule is a scope's requireProvenance rule: a cache of the scope
// counts only if it carries a signed provenance record by a builder the
// scope allows, whose subject is the cache, and every cache that record
// says the build imported re-verifies now, under this policy (see
// verify/provenance.go).
type ProvenanceRule struct {
	// Required is requireProvenance.
	Required bool
	// MaxDepth is how many levels of imports are re-verified (their own
	// records read in turn where their scope requires provenance);
	// DefaultProvenanceMaxDepth when not set.
	MaxDepth int
	// MaxRequests bounds the registry requests of one chain walk;
	// DefaultProvenanceMaxRequests when not set.
	MaxRequests int
}

// provenanceRule reads a scope's requireProvenance, maxDepth and
// maxRequests. maxDepth and maxRequests without requireProvenance: true
// are errors (they would silently do nothing), as is requireProvenance on
// a skip scope (which verifies nothing).
func (ps *parser) provenanceRule(sf map[string]field, path string, level Level) ProvenanceRule {
	r := ProvenanceRule{MaxDepth: DefaultProvenanceMaxDepth, MaxRequests: DefaultProvenanceMaxRequests}
	rf, hasRequire := sf["requireProvenance"]
	if hasRequire {
		if b, ok := ps.boolean(rf, path+".requireProvenance"); ok {
			r.Required = b
		}
		if r.Required && level == LevelSkip {
			ps.errorf(rf.key, path+".requireProvenance", "a skip scope verifies nothing: it cannot require provenance")
		}
	}
	bound := func(name string, lo, hi int, set *int) {
		f, ok := sf[name]
		if !ok {
			return
		}
		fp := path + "." + name
		v, ok := ps.integer(f, fp)
		if !ok {
			return
		}
		switch {
		case !r.Required && hasRequire:
			ps.errorf(f.key, fp, "has no effect: requireProvenance is false")
		case !r.Required:
			ps.errorf(f.key, fp, "has no effect without requireProvenance: true")
		case v < lo || v > hi:
			ps.errorf(f.key, fp, "%d is out of range: want %d to %d", v, lo, hi)
		default:
			*set = v
		}
	}
	bound("maxDepth", 0, maxProvenanceDepth, &r.MaxDepth)
	bound("maxRequests", 1, maxProvenanceRequests, &r.MaxRequests)
	if !r.Required {
		return ProvenanceRule{} // the zero value: no rule
	}
	return r
}
