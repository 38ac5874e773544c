package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/docker-trustcache/docker-trustcache/verify/decision"
)

// Limits of an inspected request. Larger requests are refused, never
// forwarded unverified.
const (
	// MaxRequestSize bounds a Solve request: buildkitd's own limit
	// (containerd's defaults.DefaultMaxRecvMsgSize).
	MaxRequestSize = 16 << 20
	// MaxImports bounds the cache imports of one request.
	MaxImports = 64
)

// Frontend attributes that carry cache imports (BuildKit's dockerui: a
// JSON list of {Type, Attrs}, and the older comma-separated registry refs).
const (
	attrCacheImports = "cache-imports"
	attrCacheFrom    = "cache-from"
)

// Import is one cache import a request asks buildkitd for.
type Import struct {
	Type  string
	Attrs map[string]string
	// Where names the place in the request it was found, for the log:
	// Cache.Imports, FrontendAttrs[cache-imports], …
	Where string
}

// Ref is the ref attribute: the reference of a registry import.
func (i Import) Ref() string { return i.Attrs["ref"] }

// Decision is what becomes of one import, in the vocabulary of
// verify/decision: Passed keeps it as the client gave it, Used passes it on
// with Ref as its ref attribute (its other attributes kept), and any other
// action — Dropped, Blocked, the zero Decision — removes it: the build runs
// without it.
type Decision struct {
	Action decision.Action
	Ref    string // for Used: the verified content endpoint's reference
}

// MalformedError reports a request the gateway cannot decode, or one over
// its limits. Such a request is refused (codes.InvalidArgument).
type MalformedError struct {
	Why string
}

func (e *MalformedError) Error() string { return e.Why }

func malformed(format string, args ...any) error {
	return &MalformedError{Why: fmt.Sprintf(format, args...)}
}

// shape says where a Solve request carries cache imports, by protobuf
// field number (BuildKit v0.34.2's control.proto and gateway.proto).
type shape struct {
	attrs     protowire.Number // map<string, string> of frontend attributes
	attrsName string
	cache     protowire.Number // CacheOptions (control API), 0 if none
	entries   protowire.Number // repeated CacheOptionsEntry (frontend API), 0 if none
	// frontendField is the string naming the frontend.
	frontendField protowire.Number
}

// Inspected methods and where their requests carry imports.
var (
	// moby.buildkit.v1.SolveRequest: Frontend = 6, FrontendAttrs = 7,
	// Cache = 8.
	controlSolve = shape{attrs: 7, attrsName: "FrontendAttrs", cache: 8, frontendField: 6}
	// moby.buildkit.v1.frontend.SolveRequest: Frontend = 2,
	// FrontendOpt = 3, CacheImports = 12.
	bridgeSolve = shape{attrs: 3, attrsName: "FrontendOpt", entries: 12, frontendField: 2}

	inspected = map[string]shape{
		"/moby.buildkit.v1.Control/Solve":            controlSolve,
		"/moby.buildkit.v1.frontend.LLBBridge/Solve": bridgeSolve,
	}
)

// Field numbers inside the messages the gateway decodes.
const (
	cacheImportRefs protowire.Number = 2 // CacheOptions.ImportRefsDeprecated
	cacheImports    protowire.Number = 5 // CacheOptions.Imports
	entryType       protowire.Number = 1 // CacheOptionsEntry.Type
	entryAttrs      protowire.Number = 2 // CacheOptionsEntry.Attrs
	mapKey          protowire.Number = 1 // a map entry's key
	mapValue        protowire.Number = 2 // a map entry's value
)

// imports returns the cache imports of req, in the order rewrite takes
// their decisions.
func (s shape) imports(req []byte) ([]Import, error) {
	var r rewriter
	if _, err := r.run(s, req); err != nil {
		return nil, err
	}
	return r.found, nil
}

// rewrite applies decisions, one per import imports returned, to req.
// Every field that carries no import is kept byte for byte; when every
// decision is Passed, req itself is returned.
func (s shape) rewrite(req []byte, decisions []Decision) ([]byte, error) {
	if !slices.ContainsFunc(decisions, func(d Decision) bool { return d.Action != decision.Passed }) {
		if _, err := s.imports(req); err != nil {
			return nil, err
		}
		return req, nil
	}
	r := rewriter{decisions: decisions, write: true}
	out, err := r.run(s, req)
	if err != nil {
		return nil, err
	}
	if r.n != len(decisions) {
		return nil, fmt.Errorf("gateway: %d decisions for %d imports", len(decisions), r.n)
	}
	return out, nil
}

// rewriter walks a request, collecting its imports and, when write is set,
// writing the request with decisions applied.
type rewriter struct {
	found     []Import
	decisions []Decision
	n         int // decisions taken
	write     bool
}

// next records imp and returns its decision.
func (r *rewriter) next(imp Import) (Decision, error) {
	if len(r.found) == MaxImports {
		return Decision{}, malformed("more than %d cache imports", MaxImports)
	}
	r.found = append(r.found, imp)
	if !r.write {
		return Decision{Action: decision.Passed}, nil
	}
	if r.n >= len(r.decisions) {
		return Decision{}, errors.New("gateway: fewer decisions than imports")
	}
	d := r.decisions[r.n]
	r.n++
	if d.Action == decision.Used && d.Ref == "" {
		return Decision{}, fmt.Errorf("gateway: import %d (%s) is to be used but has no verified reference", r.n-1, imp.Where)
	}
	return d, nil
}

// field is one field of a message as it is on the wire.
type field struct {
	num protowire.Number
	typ protowire.Type
	raw []byte // tag and value
	val []byte // the payload of a bytes field
}

// fields splits a message into its fields.
func fields(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, malformed("%v", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, malformed("field %d: %v", num, protowire.ParseError(m))
		}
		f := field{num: num, typ: typ, raw: b[:n+m]}
		if typ == protowire.BytesType {
			f.val, _ = protowire.ConsumeBytes(b[n : n+m])
		}
		out = append(out, f)
		b = b[n+m:]
	}
	return out, nil
}

// bytesField checks that f, a field the gateway decodes, is length
// delimited: another wire type there is refused rather than left to the
// server's interpretation.
func bytesField(f field, name string) error {
	if f.typ != protowire.BytesType {
		return malformed("%s (field %d) has wire type %d, want bytes", name, f.num, f.typ)
	}
	return nil
}

// str checks that b is valid UTF-8, as a proto3 string must be.
func str(b []byte, name string) (string, error) {
	if !utf8.Valid(b) {
		return "", malformed("%s is not valid UTF-8", name)
	}
	return string(b), nil
}

func appendBytesField(out []byte, num protowire.Number, v []byte) []byte {
	out = protowire.AppendTag(out, num, protowire.BytesType)
	return protowire.AppendBytes(out, v)
}

// run walks req (shape s).
func (r *rewriter) run(s shape, req []byte) ([]byte, error) {
	if len(req) > MaxRequestSize {
		return nil, malformed("request of %d bytes exceeds %d", len(req), MaxRequestSize)
	}
	fs, err := fields(req)
	if err != nil {
		return nil, err
	}
	// A map field repeats its key: the last entry wins, as in the server's
	// decoder. Only the last entry of an inspected attribute is decided
	// and written; the earlier ones are dropped.
	keys := make([]string, len(fs))
	vals := make([]string, len(fs))
	last := map[string]int{}
	for i, f := range fs {
		if f.num != s.attrs {
			continue
		}
		if err := bytesField(f, s.attrsName); err != nil {
			return nil, err
		}
		k, v, err := mapEntry(f.val, s.attrsName)
		if err != nil {
			return nil, err
		}
		if ks := string(k); ks == attrCacheImports || ks == attrCacheFrom {
			keys[i] = ks
			last[ks] = i
			if vals[i], err = str(v, s.attrsName+"["+ks+"]"); err != nil {
				return nil, err
			}
		}
	}
	var out []byte
	if r.write {
		out = make([]byte, 0, len(req)+512)
	}
	for i, f := range fs {
		switch {
		case keys[i] != "":
			if last[keys[i]] != i {
				continue
			}
			v, ok, err := r.attr(s.attrsName, keys[i], vals[i])
			if err != nil {
				return nil, err
			}
			if ok && r.write {
				out = appendBytesField(out, f.num, mapEntryBytes(keys[i], v))
			}
		case s.cache != 0 && f.num == s.cache:
			if err := bytesField(f, "Cache"); err != nil {
				return nil, err
			}
			v, err := r.cacheOptions(f.val)
			if err != nil {
				return nil, err
			}
			if r.write {
				out = appendBytesField(out, f.num, v)
			}
		case s.entries != 0 && f.num == s.entries:
			if err := bytesField(f, "CacheImports"); err != nil {
				return nil, err
			}
			v, ok, err := r.entry(f.val, "CacheImports")
			if err != nil {
				return nil, err
			}
			if ok && r.write {
				out = appendBytesField(out, f.num, v)
			}
		default:
			if r.write {
				out = append(out, f.raw...)
			}
		}
	}
	return out, nil
}

// mapEntry decodes a map<string, string> entry. Fields repeated in it:
// the last wins. Unknown fields are ignored, as by the server.
func mapEntry(b []byte, name string) (key, value []byte, err error) {
	fs, err := fields(b)
	if err != nil {
		return nil, nil, malformed("%s entry: %v", name, err)
	}
	for _, f := range fs {
		switch f.num {
		case mapKey, mapValue:
			if err := bytesField(f, name+" entry"); err != nil {
				return nil, nil, err
			}
			if f.num == mapKey {
				key = f.val
			} else {
				value = f.val
			}
		}
	}
	return key, value, nil
}

func mapEntryBytes(k, v string) []byte {
	var b []byte
	b = protowire.AppendTag(b, mapKey, protowire.BytesType)
	b = protowire.AppendString(b, k)
	b = protowire.AppendTag(b, mapValue, protowire.BytesType)
	return protowire.AppendString(b, v)
}

// cacheOptions walks a CacheOptions message.
func (r *rewriter) cacheOptions(b []byte) ([]byte, error) {
	fs, err := fields(b)
	if err != nil {
		return nil, malformed("Cache: %v", err)
	}
	var out []byte
	for _, f := range fs {
		switch f.num {
		case cacheImportRefs:
			if err := bytesField(f, "Cache.ImportRefsDeprecated"); err != nil {
				return nil, err
			}
			ref, err := str(f.val, "Cache.ImportRefsDeprecated")
			if err != nil {
				return nil, err
			}
			if ref == "" {
				return nil, malformed("Cache.ImportRefsDeprecated has an empty reference")
			}
			// BuildKit turns each into {Type: registry, Attrs: {ref: …}}.
			d, err := r.next(Import{Type: "registry", Attrs: map[string]string{"ref": ref}, Where: "Cache.ImportRefsDeprecated"})
			if err != nil {
				return nil, err
			}
			switch d.Action {
			case decision.Passed:
				out = append(out, f.raw...)
			case decision.Used:
				out = appendBytesField(out, f.num, []byte(d.Ref))
			}
		case cacheImports:
			if err := bytesField(f, "Cache.Imports"); err != nil {
				return nil, err
			}
			v, ok, err := r.entry(f.val, "Cache.Imports")
			if err != nil {
				return nil, err
			}
			if ok {
				out = appendBytesField(out, f.num, v)
			}
		default:
			out = append(out, f.raw...)
		}
	}
	return out, nil
}

// entry walks a CacheOptionsEntry; ok is false when it is removed.
func (r *rewriter) entry(b []byte, where string) (_ []byte, ok bool, _ error) {
	fs, err := fields(b)
	if err != nil {
		return nil, false, malformed("%s: %v", where, err)
	}
	imp := Import{Attrs: map[string]string{}, Where: where}
	var unknown []byte
	for _, f := range fs {
		switch f.num {
		case entryType:
			if err := bytesField(f, where+".Type"); err != nil {
				return nil, false, err
			}
			if imp.Type, err = str(f.val, where+".Type"); err != nil {
				return nil, false, err
			}
		case entryAttrs:
			if err := bytesField(f, where+".Attrs"); err != nil {
				return nil, false, err
			}
			k, v, err := mapEntry(f.val, where+".Attrs")
			if err != nil {
				return nil, false, err
			}
			ks, err := str(k, where+".Attrs key")
			if err != nil {
				return nil, false, err
			}
			if imp.Attrs[ks], err = str(v, where+".Attrs["+ks+"]"); err != nil {
				return nil, false, err
			}
		default:
			unknown = append(unknown, f.raw...)
		}
	}
	if imp.Type == "" {
		return nil, false, malformed("%s has an entry with no Type", where)
	}
	d, err := r.next(imp)
	if err != nil {
		return nil, false, err
	}
	switch d.Action {
	case decision.Passed:
		return b, true, nil
	case decision.Used:
	default:
		return nil, false, nil
	}
	imp.Attrs["ref"] = d.Ref
	var out []byte
	out = protowire.AppendTag(out, entryType, protowire.BytesType)
	out = protowire.AppendString(out, imp.Type)
	keys := make([]string, 0, len(imp.Attrs))
	for k := range imp.Attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = appendBytesField(out, entryAttrs, mapEntryBytes(k, imp.Attrs[k]))
	}
	return append(out, unknown...), true, nil
}

// jsonEntry is a cache import in the "cache-imports" attribute, decoded
// as BuildKit decodes it (encoding/json into controlapi.CacheOptionsEntry).
type jsonEntry struct {
	Type  string            `json:"Type,omitempty"`
	Attrs map[string]string `json:"Attrs,omitempty"`
}

// jsonEntryNulls is jsonEntry with what may be null made visible: the
// gateway refuses a null anywhere in the list.
type jsonEntryNulls struct {
	Type  *string            `json:"Type,omitempty"`
	Attrs map[string]*string `json:"Attrs,omitempty"`
}

// parseCacheImports decodes the "cache-imports" attribute. It refuses
// what BuildKit's Dockerfile frontend would decode into a nil entry (v0.34.2
// dereferences it and buildkitd exits), a null anywhere, an entry with no
// Type, and anything but a JSON list.
func parseCacheImports(where, value string) ([]*jsonEntry, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(value), &raw); err != nil {
		return nil, malformed("%s: %v", where, err)
	}
	if raw == nil {
		return nil, malformed("%s is null: want a JSON list of cache imports", where)
	}
	list := make([]*jsonEntry, 0, len(raw))
	for i, r := range raw {
		var n *jsonEntryNulls
		if err := json.Unmarshal(r, &n); err != nil {
			return nil, malformed("%s[%d]: %v", where, i, err)
		}
		if n == nil {
			return nil, malformed("%s[%d] is null: want a cache import {\"Type\": …, \"Attrs\": {…}}", where, i)
		}
		if n.Type == nil || *n.Type == "" {
			return nil, malformed("%s[%d] has no Type", where, i)
		}
		e := &jsonEntry{Type: *n.Type}
		for k, v := range n.Attrs {
			if v == nil {
				return nil, malformed("%s[%d].Attrs[%s] is null", where, i, k)
			}
			if e.Attrs == nil {
				e.Attrs = map[string]string{}
			}
			e.Attrs[k] = *v
		}
		list = append(list, e)
	}
	return list, nil
}

// attr walks the value of frontend attribute key; ok is false when the
// attribute is to be removed (no import left).
func (r *rewriter) attr(attrs, key, value string) (_ string, ok bool, _ error) {
	where := attrs + "[" + key + "]"
	if value == "" {
		return value, true, nil
	}
	if key == attrCacheFrom {
		// dockerui: strings.Split(value, ","), each a registry ref.
		var kept []string
		for ref := range strings.SplitSeq(value, ",") {
			if ref == "" {
				return "", false, malformed("%s has an empty reference in %q", where, value)
			}
			d, err := r.next(Import{Type: "registry", Attrs: map[string]string{"ref": ref}, Where: where})
			if err != nil {
				return "", false, err
			}
			switch d.Action {
			case decision.Passed:
				kept = append(kept, ref)
			case decision.Used:
				kept = append(kept, d.Ref)
			}
		}
		return strings.Join(kept, ","), len(kept) > 0, nil
	}
	list, err := parseCacheImports(where, value)
	if err != nil {
		return "", false, err
	}
	var kept []*jsonEntry
	for _, e := range list {
		attrs := map[string]string{}
		for k, v := range e.Attrs {
			attrs[k] = v
		}
		d, err := r.next(Import{Type: e.Type, Attrs: attrs, Where: where})
		if err != nil {
			return "", false, err
		}
		switch d.Action {
		case decision.Passed:
			kept = append(kept, e)
		case decision.Used:
			attrs["ref"] = d.Ref
			kept = append(kept, &jsonEntry{Type: e.Type, Attrs: attrs})
		}
	}
	if len(kept) == 0 {
		return "", false, nil
	}
	out, err := json.Marshal(kept)
	if err != nil {
		return "", false, err
	}
	return string(out), true, nil
}
