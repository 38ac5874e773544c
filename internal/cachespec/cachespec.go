// Package cachespec is the grammar of a BuildKit cache source or
// destination as buildx v0.38.2 reads it from --cache-from and --cache-to
// (and bake's cache-from and cache-to strings): one CSV record of key=value
// attributes with a type, "type=registry,ref=REPO:TAG,mode=max", or a bare
// image reference standing for type=registry,ref=REF. It parses, reads,
// changes and writes such a spec; it knows nothing of the rest of the
// command line (internal/buildargs) or of what a cache is trusted for
// (verify).
package cachespec

import (
	"encoding/csv"
	"fmt"
	"maps"
	"strings"

	"github.com/tonistiigi/go-csvvalue"
)

// Spec is one cache source or destination, as buildx v0.38.2 reads it
// from a --cache-from or --cache-to value (util/buildflags/cache.go,
// CacheOptionsEntry.UnmarshalText).
//
// Keys are lower case, as buildx makes them. Attrs keeps the attributes in the
// order written, repeated keys included; buildx keeps them in a map, so the
// last occurrence of a key is the one that counts, and every method here reads
// it that way. A Spec built by hand should follow the same rules (lower
// case keys, no "type" key in Attrs); Rewrite refuses one that does not
// survive String and Parse (internal/buildargs/rewrite.go).
type Spec struct {
	Type  string // "registry", "local", "gha", "s3", "azblob", "inline", …; never empty once parsed
	Attrs []Attr // every attribute but type, in order
}

// Attr is one key=value attribute of a Spec.
type Attr struct {
	Key   string
	Value string
}

// ParseFlag parses the value of one --cache-from or --cache-to flag as
// buildx v0.38.2 does (buildflags.ParseCacheEntry for a single value):
//
//   - "" gives no spec: buildx skips the flag.
//   - A value without "=" is a CSV list of image references, each
//     shorthand for type=registry,ref=REF: "a,b" gives two specs. Each field
//     is parsed again on its own, as buildx does, so a field that is empty or
//     still holds a quote or comma is an error.
//   - Any other value is one spec, see Parse.
//
// The command line has no JSON form: buildx's JSON decoding serves bake files
// only.
func ParseFlag(value string) ([]Spec, error) {
	if value == "" {
		return nil, nil
	}
	if strings.Contains(value, "=") {
		s, err := Parse(value)
		if err != nil {
			return nil, err
		}
		return []Spec{s}, nil
	}
	refs, err := ParseRefs(value)
	if err != nil {
		return nil, err
	}
	return refs, nil
}

// ParseRefs parses a cache value written as a CSV list of image
// references ("user/app:cache" or "a:cache,b:cache"), each one shorthand for
// type=registry,ref=REF. It is the branch of ParseFlag for values
// without "=", and refuses a value with one.
func ParseRefs(value string) ([]Spec, error) {
	if strings.Contains(value, "=") {
		return nil, fmt.Errorf("parsing cache references %q: a reference list has no \"=\"", value)
	}
	fields, err := splitCSV(value)
	if err != nil {
		return nil, fmt.Errorf("parsing cache references %q: %w", value, err)
	}
	specs := make([]Spec, 0, len(fields))
	for _, f := range fields {
		s, err := Parse(f)
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	return specs, nil
}

// Parse parses one cache spec as buildx v0.38.2 does
// (CacheOptionsEntry.UnmarshalText):
//
//   - The value is one CSV record (tonistiigi/go-csvvalue: fields may be
//     quoted with `"`, `""` is a quote inside a quoted field, a bare quote in
//     an unquoted field is an error, one trailing newline is dropped, an empty
//     value is an error).
//   - A single field without "=" is shorthand for type=registry,ref=FIELD.
//   - Otherwise every field must be key=value (split at the first "="); keys
//     are lower-cased, values are kept as written (empty ones too), and "type"
//     must end up non-empty.
func Parse(s string) (Spec, error) {
	fields, err := splitCSV(s)
	if err != nil {
		return Spec{}, fmt.Errorf("parsing cache spec %q: %w", s, err)
	}
	if len(fields) == 1 && !strings.Contains(fields[0], "=") {
		return Spec{Type: "registry", Attrs: []Attr{{Key: "ref", Value: fields[0]}}}, nil
	}
	var spec Spec
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return Spec{}, fmt.Errorf("parsing cache spec %q: invalid value %s", s, f)
		}
		k = strings.ToLower(k)
		if k == "type" {
			spec.Type = v
			continue
		}
		spec.Attrs = append(spec.Attrs, Attr{Key: k, Value: v})
	}
	if spec.Type == "" {
		return Spec{}, fmt.Errorf("parsing cache spec %q: type required", s)
	}
	return spec, nil
}

// Get returns the value of key, the last one when the key is repeated.
func (s Spec) Get(key string) (string, bool) {
	key = strings.ToLower(key)
	if key == "type" {
		return s.Type, s.Type != ""
	}
	for i := len(s.Attrs) - 1; i >= 0; i-- {
		if s.Attrs[i].Key == key {
			return s.Attrs[i].Value, true
		}
	}
	return "", false
}

// Ref returns the ref attribute (for type=registry, the image or cache
// manifest to import), "" when unset.
func (s Spec) Ref() string {
	v, _ := s.Get("ref")
	return v
}

// Set sets key (lower-cased) to value: the first occurrence takes the value,
// later repeats are dropped, and a new key goes last. Key "type" sets Type.
// Set never writes into the old Attrs array, so copies of s made before the
// call are not changed.
func (s *Spec) Set(key, value string) {
	key = strings.ToLower(key)
	if key == "type" {
		s.Type = value
		return
	}
	attrs := make([]Attr, 0, len(s.Attrs)+1)
	found := false
	for _, a := range s.Attrs {
		if a.Key != key {
			attrs = append(attrs, a)
			continue
		}
		if !found {
			attrs = append(attrs, Attr{Key: key, Value: value})
			found = true
		}
	}
	if !found {
		attrs = append(attrs, Attr{Key: key, Value: value})
	}
	s.Attrs = attrs
}

// Map returns the attributes as buildx holds them: a map, last value wins,
// without type.
func (s Spec) Map() map[string]string {
	m := make(map[string]string, len(s.Attrs))
	for _, a := range s.Attrs {
		m[a.Key] = a.Value
	}
	return m
}

// Equal reports whether buildx sees s and o as the same entry: same type,
// same attributes with last-wins semantics, order ignored.
func (s Spec) Equal(o Spec) bool {
	return s.Type == o.Type && maps.Equal(s.Map(), o.Map())
}

// String writes s as the CSV value buildx reads: type first, then the
// attributes in order, each key=value field quoted only when encoding/csv
// would quote it. Parse(s.String()) is Equal to s (and has the same
// Attrs) for every spec that Parse returned or Set changed.
func (s Spec) String() string {
	fields := make([]string, 0, len(s.Attrs)+1)
	if s.Type != "" {
		fields = append(fields, "type="+s.Type)
	}
	for _, a := range s.Attrs {
		fields = append(fields, a.Key+"="+a.Value)
	}
	if len(fields) == 0 {
		return ""
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	// Write only fails on an invalid Comma or a failing io.Writer; neither
	// can happen with the default Comma and a strings.Builder.
	_ = w.Write(fields)
	w.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}

// Clone returns s with its own copy of Attrs.
func (s Spec) Clone() Spec {
	s.Attrs = append([]Attr(nil), s.Attrs...)
	return s
}

// splitCSV splits one CSV line as buildx does, with
// github.com/tonistiigi/go-csvvalue's default parser: comma separated, `"`
// quoting, no lazy quotes, no trimming, one trailing "\n" or "\r\n"
// dropped, io.EOF for an empty line, errors as *csv.ParseError with the
// column. Unlike encoding/csv it keeps "\r\n" inside a quoted field as
// written and treats a newline outside quotes as data.
func splitCSV(line string) ([]string, error) { return csvvalue.Fields(line, nil) }
