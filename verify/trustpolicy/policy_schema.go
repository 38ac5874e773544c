package trustpolicy

import (
	"crypto"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"gopkg.in/yaml.v3"

	"github.com/docker-trustcache/docker-trustcache/internal/lazyregexp"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// The policy's schema: its fields, what each may hold and what it means,
// read by the parser core (policy_parse.go) from the yaml.Node tree.

var (
	// revokedRE is the form of a key id.
	revokedRE = lazyregexp.New(`^sha256:[0-9a-f]{64}$`)
	// daysRE is a maxAge with a leading day count: "30d", "1d12h".
	daysRE = lazyregexp.New(`^(\d+)d(.*)$`)
)

// policy reads the top-level mapping.
func (ps *parser) policy(root *yaml.Node) *Policy {
	p := &Policy{File: ps.file, SignatureFormat: SignatureFormatLegacy}
	f := ps.fields(root, "", "version", "builders", "scopes", "revoked", "allowUnsignedTypes", "signatureFormat", "requireVerifiedBytes", "frontends", "trustedRoot")
	if f == nil {
		return nil
	}

	if v, ok := f["version"]; !ok {
		ps.errorf(root, "version", "missing: a policy starts with \"version: %d\"", Version)
	} else if n, ok := ps.integer(v, "version"); ok {
		if n != Version {
			ps.errorf(v.key, "version", "unsupported version %d: this trustcache reads version %d", n, Version)
		}
		p.Version = n
	}

	if t, ok := f["trustedRoot"]; ok {
		ps.trustedRoot(t, p) // keyless.go
	}

	names := make(map[string]bool)
	if b, ok := f["builders"]; !ok {
		ps.errorf(root, "builders", "missing: a policy needs at least one builder")
	} else {
		p.Builders = ps.builders(b, names)
		ps.keylessBuilders(p, root) // identity.go
	}

	if s, ok := f["scopes"]; !ok {
		ps.errorf(root, "scopes", "missing: a policy needs at least one scope (a repository no scope matches is untrusted)")
	} else {
		p.Scopes = ps.scopes(s, names)
	}

	if r, ok := f["revoked"]; ok {
		for i, n := range ps.sequence(r, "revoked") {
			fp := fmt.Sprintf("revoked[%d]", i)
			id, ok := ps.str(n, fp)
			if !ok {
				continue
			}
			if !revokedRE.MatchString(id) {
				ps.errorf(n, fp, "%q is not a key id (sha256: and 64 lowercase hex digits; see `docker trustcache keys id`)", id)
				continue
			}
			if !slices.Contains(p.Revoked, id) {
				p.Revoked = append(p.Revoked, id)
			}
		}
	}

	if u, ok := f["allowUnsignedTypes"]; ok {
		for i, n := range ps.sequence(u, "allowUnsignedTypes") {
			fp := fmt.Sprintf("allowUnsignedTypes[%d]", i)
			t, ok := ps.str(n, fp)
			if !ok {
				continue
			}
			if !slices.Contains(unsignedTypes, t) {
				ps.errorf(n, fp, "unknown cache type %q: want one of %s", t, strings.Join(unsignedTypes, ", "))
				continue
			}
			if !slices.Contains(p.AllowUnsignedTypes, t) {
				p.AllowUnsignedTypes = append(p.AllowUnsignedTypes, t)
			}
		}
	}

	if fe, ok := f["frontends"]; ok {
		ps.frontends(fe, p)
	}

	if rv, ok := f["requireVerifiedBytes"]; ok {
		p.RequireVerifiedBytes, _ = ps.boolean(rv, "requireVerifiedBytes")
	}

	if sf, ok := f["signatureFormat"]; ok {
		if s, ok := ps.str(sf.value, "signatureFormat"); ok {
			switch s {
			case SignatureFormatLegacy, SignatureFormatBundle:
				p.SignatureFormat = s
			default:
				ps.errorf(sf.key, "signatureFormat", "unknown signature format %q: want %s or %s", s, SignatureFormatLegacy, SignatureFormatBundle)
			}
		}
	}
	return p
}

// keyOwner remembers where a key was first listed.
type keyOwner struct {
	index int    // of the builder
	name  string // of the builder
	line  int
}

// builders reads the builders list, adding every builder name to names
// (even of a builder with problems, so that scopes naming it do not report
// it as unknown).
func (ps *parser) builders(f field, names map[string]bool) []Builder {
	list := ps.sequence(f, "builders")
	if list != nil && len(list) == 0 {
		ps.errorf(f.key, "builders", "empty: a policy needs at least one builder")
	}
	var out []Builder
	nameLine := make(map[string]int)
	owners := make(map[string]keyOwner)
	for i, n := range list {
		path := fmt.Sprintf("builders[%d]", i)
		bf := ps.fields(n, path, "name", "key", "keys", "identity")
		if bf == nil {
			continue
		}
		b := Builder{Line: n.Line}
		if nf, ok := bf["name"]; !ok {
			ps.errorf(n, path+".name", "missing: every builder needs a name")
		} else if name, ok := ps.str(nf.value, path+".name"); ok {
			switch {
			case strings.TrimSpace(name) == "":
				ps.errorf(nf.key, path+".name", "empty builder name")
			case names[name]:
				ps.errorf(nf.key, path+".name", "builder %q is already defined at line %d", name, nameLine[name])
			default:
				names[name] = true
				nameLine[name] = n.Line
			}
			b.Name = name
		}

		var refs []*yaml.Node
		var refPaths []string
		kf, hasKey := bf["key"]
		ksf, hasKeys := bf["keys"]
		switch {
		case hasKey && hasKeys:
			ps.errorf(ksf.key, path+".keys", "a builder has either key or keys, not both")
		case hasKey:
			refs, refPaths = []*yaml.Node{kf.value}, []string{path + ".key"}
		case hasKeys:
			refs = ps.sequence(ksf, path+".keys")
			if refs != nil && len(refs) == 0 {
				ps.errorf(ksf.key, path+".keys", "empty: list at least one key")
			}
			for j := range refs {
				refPaths = append(refPaths, fmt.Sprintf("%s.keys[%d]", path, j))
			}
		case bf["identity"].value != nil:
		default:
			ps.errorf(n, path, "builder has no key: give key (one), keys (a list, while rotating) or identity (a keyless CI identity)")
		}
		if idf, ok := bf["identity"]; ok {
			b.Identity = ps.identity(idf, path+".identity") // identity.go
		}
		for j, rn := range refs {
			k, ok := ps.key(rn, refPaths[j])
			if !ok {
				continue
			}
			if o, dup := owners[k.ID]; dup {
				if o.index == i {
					ps.errorf(rn, refPaths[j], "key %s (%s) is listed twice for this builder (line %d)", k.Display(), k.ID, o.line)
				} else {
					ps.errorf(rn, refPaths[j], "key %s (%s) already belongs to builder %q (line %d): a key belongs to one builder", k.Display(), k.ID, o.name, o.line)
				}
				continue
			}
			owners[k.ID] = keyOwner{index: i, name: b.Name, line: rn.Line}
			b.Keys = append(b.Keys, k)
		}
		out = append(out, b)
	}
	return out
}

// key loads the public key a key reference names.
func (ps *parser) key(n *yaml.Node, path string) (Key, bool) {
	ref, ok := ps.str(n, path)
	if !ok {
		return Key{}, false
	}
	pub, err := loadPublicKey(ref, ps.baseDir)
	if err != nil {
		ps.errorf(n, path, "%v", err)
		return Key{}, false
	}
	id, err := keys.ID(pub)
	if err != nil {
		ps.errorf(n, path, "key %s: %v", keys.DescribeRef(ref), err)
		return Key{}, false
	}
	return Key{ID: id, Public: pub, Ref: ref}, true
}

// loadPublicKey loads a key with keys.LoadPublicKey after refusing what a
// policy may not name: KMS and other remote references, and files that are
// not small regular files (a policy naming /dev/zero or a FIFO must fail,
// not hang).
func loadPublicKey(ref, baseDir string) (crypto.PublicKey, error) {
	switch keys.KindOf(ref) { // the rules of key references are keys' (keys/scheme.go)
	case keys.RefEmpty:
		return nil, errors.New("empty key reference")
	case keys.RefKMS:
		return nil, fmt.Errorf("key %q: KMS keys are not supported; export the public key to a PEM file", ref)
	case keys.RefScheme:
		return nil, fmt.Errorf("key %q: unsupported key reference scheme: want a PEM file path, inline PEM or env://VAR", ref)
	case keys.RefFile:
		if err := keys.CheckPublicKeyFile(ref, baseDir); err != nil {
			return nil, err
		}
	}
	pub, err := keys.LoadPublicKey(ref, baseDir)
	if err != nil {
		// keys names the reference in most of its errors; name it when it
		// does not.
		if d := keys.DescribeRef(ref); !strings.Contains(err.Error(), d) {
			return nil, fmt.Errorf("key %s: %w", d, err)
		}
		return nil, err
	}
	return pub, nil
}

// scopes reads the scopes list; names are the builders defined.
func (ps *parser) scopes(f field, names map[string]bool) []Scope {
	list := ps.sequence(f, "scopes")
	if list != nil && len(list) == 0 {
		ps.errorf(f.key, "scopes", "empty: a policy needs at least one scope (a repository no scope matches is untrusted)")
	}
	var out []Scope
	// patterns maps a canonical pattern to where it was first written.
	patterns := make(map[string]string)
	for i, n := range list {
		path := fmt.Sprintf("scopes[%d]", i)
		sf := ps.fields(n, path, "repositories", "builders", "threshold", "level", "onUntrusted", "maxAge", "annotations", "acceptUnboundBundles", "requireProvenance", "maxDepth", "maxRequests", "fallback")
		if sf == nil {
			continue
		}
		s := Scope{Threshold: 1, Level: LevelStrict, OnUntrusted: Drop, Line: n.Line}

		if rf, ok := sf["repositories"]; !ok {
			ps.errorf(n, path+".repositories", "missing: a scope needs at least one repository pattern")
		} else {
			list := ps.sequence(rf, path+".repositories")
			if list != nil && len(list) == 0 {
				ps.errorf(rf.key, path+".repositories", "empty: a scope needs at least one repository pattern")
			}
			for j, rn := range list {
				fp := fmt.Sprintf("%s.repositories[%d]", path, j)
				pat, ok := ps.str(rn, fp)
				if !ok {
					continue
				}
				c, err := canonicalPattern(pat)
				if err != nil {
					ps.errorf(rn, fp, "%v", err)
					continue
				}
				if where, dup := patterns[c]; dup {
					ps.errorf(rn, fp, "repository pattern %q (%s) is already in %s: a pattern belongs to one scope", pat, c, where)
					continue
				}
				patterns[c] = fmt.Sprintf("%s (line %d)", fp, rn.Line)
				s.Repositories = append(s.Repositories, pat)
			}
		}

		bf, hasBuilders := sf["builders"]
		if hasBuilders {
			for j, bn := range ps.sequence(bf, path+".builders") {
				fp := fmt.Sprintf("%s.builders[%d]", path, j)
				name, ok := ps.str(bn, fp)
				if !ok {
					continue
				}
				if slices.Contains(s.Builders, name) {
					ps.errorf(bn, fp, "builder %q is listed twice", name)
					continue
				}
				if !names[name] {
					ps.errorf(bn, fp, "unknown builder %q%s", name, suggest(name, sortedNames(names)))
				}
				s.Builders = append(s.Builders, name)
			}
		}

		if lf, ok := sf["level"]; ok {
			if l, ok := ps.str(lf.value, path+".level"); ok {
				switch Level(l) {
				case LevelStrict, LevelAudit, LevelSkip:
					s.Level = Level(l)
				default:
					ps.errorf(lf.key, path+".level", "unknown level %q: want %s, %s or %s", l, LevelStrict, LevelAudit, LevelSkip)
				}
			}
		}

		// A skip scope verifies nothing, so it may list no builders (and
		// then keeps the default threshold); any other scope needs
		// threshold builders.
		if len(s.Builders) == 0 && s.Level != LevelSkip {
			at := n
			if hasBuilders {
				at = bf.key
			}
			ps.errorf(at, path+".builders", "a %s scope needs at least one builder", s.Level)
		}
		if tf, ok := sf["threshold"]; ok {
			if t, ok := ps.integer(tf, path+".threshold"); ok {
				s.Threshold = t
				switch {
				case t < 1:
					ps.errorf(tf.key, path+".threshold", "threshold %d is less than 1", t)
				case t > len(s.Builders) && (len(s.Builders) > 0 || s.Level == LevelSkip):
					ps.errorf(tf.key, path+".threshold", "threshold %d exceeds the %d builders of this scope", t, len(s.Builders))
				}
			}
		}

		if of, ok := sf["onUntrusted"]; ok {
			if a, ok := ps.str(of.value, path+".onUntrusted"); ok {
				switch OnUntrusted(a) {
				case Drop, Fail:
					s.OnUntrusted = OnUntrusted(a)
				default:
					ps.errorf(of.key, path+".onUntrusted", "unknown action %q: want %s or %s", a, Drop, Fail)
				}
			}
		}

		if mf, ok := sf["maxAge"]; ok {
			if v, ok := ps.str(mf.value, path+".maxAge"); ok {
				d, err := parseMaxAge(v)
				if err != nil {
					ps.errorf(mf.key, path+".maxAge", "%v", err)
				}
				s.MaxAge = d
			}
		}

		if af, ok := sf["annotations"]; ok {
			s.Annotations = ps.annotations(af, path+".annotations")
		}

		if bf, ok := sf["acceptUnboundBundles"]; ok {
			if b, ok := ps.boolean(bf, path+".acceptUnboundBundles"); ok {
				s.AcceptUnboundBundles = b
			}
		}
		s.Provenance = ps.provenanceRule(sf, path, s.Level)
		if ff, ok := sf["fallback"]; ok {
			if f, ok := ps.str(ff.value, path+".fallback"); ok {
				switch FallbackMode(f) {
				case FallbackLastTrusted, FallbackNone:
					s.Fallback = FallbackMode(f)
				default:
					ps.errorf(ff.key, path+".fallback", "unknown fallback %q: want %s or %s", f, FallbackLastTrusted, FallbackNone)
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// annotations reads a scope's required annotations.
func (ps *parser) annotations(f field, path string) map[string]string {
	n := f.value
	if n.Kind != yaml.MappingNode {
		ps.errorf(f.key, path, "must be a mapping of annotation key to glob, not %s", describeNode(n))
		return nil
	}
	out := make(map[string]string)
	lines := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || isNull(k) {
			ps.errorf(k, path, "annotation keys must be strings, not %s", describeNode(k))
			continue
		}
		fp := join(path, k.Value)
		switch {
		case strings.TrimSpace(k.Value) == "":
			ps.errorf(k, path, "empty annotation key")
			continue
		case lines[k.Value] != 0:
			ps.errorf(k, fp, "given twice (first at line %d)", lines[k.Value])
			continue
		}
		lines[k.Value] = k.Line
		if isNull(v) || v.Kind != yaml.ScalarNode {
			ps.errorf(k, fp, "want a glob the signed value must match, not %s", describeNode(v))
			continue
		}
		if !doublestar.ValidatePattern(v.Value) {
			ps.errorf(v, fp, "invalid glob %q", v.Value)
			continue
		}
		out[k.Value] = v.Value
	}
	return out
}

// parseMaxAge parses a Go duration, also accepting a leading day count:
// "30d", "1d12h". It must be positive; a scope without maxAge has no limit.
func parseMaxAge(s string) (time.Duration, error) {
	var days time.Duration
	rest, hasDays := s, false
	if m := daysRE.FindStringSubmatch(s); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n > int64(math.MaxInt64/(24*time.Hour)) {
			return 0, fmt.Errorf("invalid duration %q: too long", s)
		}
		days, rest, hasDays = time.Duration(n)*24*time.Hour, m[2], true
	}
	var d time.Duration
	if rest != "" || !hasDays {
		var err error
		d, err = time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: want a number and unit such as 720h or 30d", s)
		}
		if hasDays && d < 0 {
			return 0, fmt.Errorf("invalid duration %q: want a number and unit such as 720h or 30d", s)
		}
	}
	if d > math.MaxInt64-days {
		return 0, fmt.Errorf("invalid duration %q: too long", s)
	}
	total := days + d
	if total <= 0 {
		return 0, fmt.Errorf("maxAge %q must be positive; leave maxAge out for no limit", s)
	}
	return total, nil
}
