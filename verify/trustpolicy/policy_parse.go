package trustpolicy

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"gopkg.in/yaml.v3"

	"github.com/docker-trustcache/docker-trustcache/internal/lazyregexp"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// The policy is decoded from a yaml.Node tree rather than into structs, so
// that every problem can name its line, column and field, and so that all
// problems are reported at once.

var (
	// revokedRE is the form of a key id.
	revokedRE = lazyregexp.New(`^sha256:[0-9a-f]{64}$`)
	// yamlLineRE finds the line in a yaml.v3 syntax error.
	yamlLineRE = lazyregexp.New(`^yaml: line (\d+): (.*)$`)
	// daysRE is a maxAge with a leading day count: "30d", "1d12h".
	daysRE = lazyregexp.New(`^(\d+)d(.*)$`)
)

// parser collects the problems of one policy file.
type parser struct {
	file    string
	baseDir string
	errs    []*Error
}

// errorf records a problem at node n (nil: no position).
func (ps *parser) errorf(n *yaml.Node, field, format string, args ...any) {
	e := &Error{File: ps.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	ps.errs = append(ps.errs, e)
}

func parsePolicy(name string, data []byte) (*Policy, error) {
	ps := &parser{file: name, baseDir: filepath.Dir(name)}
	root, err := ps.document(data)
	if err != nil {
		return nil, err
	}
	p := ps.policy(root)
	// Problems are found field by field; report them in file order.
	slices.SortStableFunc(ps.errs, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	if err := errorsJoin(ps.errs); err != nil {
		return nil, err
	}
	return p, nil
}

// document parses data as exactly one YAML document and returns its root.
func (ps *parser) document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.errorf(nil, "", "empty policy: want a YAML mapping starting with \"version: %d\"", Version)
		} else {
			ps.syntaxError(data, err)
		}
		return nil, errorsJoin(ps.errs)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		ps.errorf(&next, "", "more than one YAML document: a policy is one document")
	case !errors.Is(err, io.EOF):
		ps.syntaxError(data, err)
	}
	if len(ps.errs) > 0 {
		return nil, errorsJoin(ps.errs)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		ps.errorf(&doc, "", "empty policy")
		return nil, errorsJoin(ps.errs)
	}
	return doc.Content[0], nil
}

// syntaxError records err, a YAML syntax error in data, at the line where
// the parser failed.
func (ps *parser) syntaxError(data []byte, err error) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		if line, convErr := strconv.Atoi(m[1]); convErr == nil {
			ps.errs = append(ps.errs, &Error{File: ps.file, Line: failedLine(data, m[2], line), Msg: "YAML: " + m[2]})
			return
		}
	}
	ps.errorf(nil, "", "%s", strings.Replace(msg, "yaml: ", "YAML: ", 1))
}

// failedLine returns the line where the YAML parser failed with problem
// (the message without "yaml: line N: "), or yamlLine when it cannot tell.
//
// yaml.v3 reports the line of its context, the start of the block or
// flow collection being parsed (often the line above a mis-indented key,
// or "builders:" two lines up), not that of the token it failed on. The
// parser reads the text in order and stops at its first problem, so the
// shortest run of leading lines that fails with the same problem ends on
// the line the parser failed on; a binary search finds it in a few
// parses.
func failedLine(data []byte, problem string, yamlLine int) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if !failsWith(data, problem) || len(lines) > 100_000 {
		return yamlLine
	}
	lo, hi := 1, len(lines) // prefix hi fails with problem; find the shortest
	for lo < hi {
		mid := lo + (hi-lo)/2
		if failsWith(bytes.Join(lines[:mid], nil), problem) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return hi
}

// failsWith says whether parsing data's YAML documents fails with problem.
func failsWith(data []byte, problem string) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			m := yamlLineRE.FindStringSubmatch(err.Error())
			return m != nil && m[2] == problem
		}
	}
}

// field is one key: value pair of a mapping.
type field struct {
	key, value *yaml.Node
}

// fields returns the pairs of mapping n by key, recording a problem for a
// node that is not a mapping, a key that is not a string, a key that is not
// one of known, and a key given twice. Null values count as absent.
func (ps *parser) fields(n *yaml.Node, path string, known ...string) map[string]field {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		ps.errorf(n, path, "must be a mapping, not %s", describeNode(n))
		return nil
	}
	out := make(map[string]field)
	seen := make(map[string]*yaml.Node)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			ps.errorf(k, path, "merge keys (<<) are not supported in a policy")
			continue
		}
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			ps.errorf(k, path, "field names must be strings, not %s", describeNode(k))
			continue
		}
		if !slices.Contains(known, k.Value) {
			// The name is shown only as a near miss of a known field: a
			// file that is no policy (a credentials file given or linked by
			// mistake) is never quoted.
			if hint := suggest(k.Value, known); hint != "" {
				ps.errorf(k, join(path, k.Value), "unknown field%s", hint)
			} else {
				ps.errorf(k, path, "unknown field: want one of %s", strings.Join(known, ", "))
			}
			continue
		}
		fp := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			ps.errorf(k, fp, "given twice (first at line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		if isNull(v) {
			continue
		}
		out[k.Value] = field{key: k, value: v}
	}
	return out
}

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

// sequence returns the items of a sequence value, or nil (after recording a
// problem) when the value is not a sequence.
func (ps *parser) sequence(f field, path string) []*yaml.Node {
	n := f.value
	if n.Kind != yaml.SequenceNode {
		ps.errorf(f.key, path, "must be a list, not %s", describeNode(n))
		return nil
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = resolve(c)
	}
	return out
}

// str returns the text of a scalar; numbers and booleans are taken as
// written.
func (ps *parser) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		ps.errorf(n, path, "must be a string, not %s", describeNode(n))
		return "", false
	}
	return n.Value, true
}

// integer returns the value of an integer scalar.
func (ps *parser) integer(f field, path string) (int, bool) {
	n := f.value
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		ps.errorf(f.key, path, "must be an integer, not %s", describeNode(n))
		return 0, false
	}
	var v int
	if err := n.Decode(&v); err != nil {
		ps.errorf(f.key, path, "%q is not an integer in range", n.Value)
		return 0, false
	}
	return v, true
}

// boolean returns the value of a boolean scalar.
func (ps *parser) boolean(f field, path string) (bool, bool) {
	n := f.value
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		ps.errorf(f.key, path, "must be true or false, not %s", describeNode(n))
		return false, false
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		ps.errorf(f.key, path, "%q is not true or false", n.Value)
		return false, false
	}
	return v, true
}

// resolve follows an alias to the node it names. Aliases may only name
// nodes defined before them, so this ends.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describeNode names the kind of a node for "must be X, not Y" messages.
// It never quotes the node's value: the file may be no policy at all (a
// credentials file given or linked by mistake); the line and column that
// every error carries point at it.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return "a string"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "true or false"
		}
		return "a " + strings.TrimPrefix(n.ShortTag(), "!!") + " value"
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

// join appends a mapping key to a field path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest returns ` (did you mean "x"?)` for the known word closest to s,
// or "".
func suggest(s string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(s), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of a and b, capped for long
// inputs.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func sortedNames(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
