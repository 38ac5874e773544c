package gateway

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/docker-trustcache/docker-trustcache/verify/decision"
)

// Message builders: protobuf by hand, as BuildKit's client encodes it.

func tagBytes(num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

func tagVarint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func mapField(num protowire.Number, k, v string) []byte {
	return tagBytes(num, cat(tagBytes(1, []byte(k)), tagBytes(2, []byte(v))))
}

// entry is a CacheOptionsEntry with attrs in key order.
func entry(typ string, attrs ...string) []byte {
	b := tagBytes(1, []byte(typ))
	for i := 0; i+1 < len(attrs); i += 2 {
		b = append(b, mapField(2, attrs[i], attrs[i+1])...)
	}
	return b
}

// unknowns are fields no inspected message defines: they must survive.
// llbDef is a pb.Definition of one op: a source.
var llbDef = tagBytes(1, tagBytes(3, tagBytes(1, []byte("docker-image://docker.io/library/busybox:latest"))))

// sessionCtx is ctx with the metadata of a session attach (Control.Session).
func sessionCtx(ctx context.Context, id string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, sessionIDHeader, id)
}

// buildCtx is ctx with the metadata of a frontend's LLBBridge call in build id.
func buildCtx(ctx context.Context, id string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, buildIDKey, id)
}

var unknowns = cat(tagVarint(99, 7), tagBytes(98, []byte("opaque")), protowire.AppendFixed64(protowire.AppendTag(nil, 97, protowire.Fixed64Type), 42))

// otherFields returns the top-level fields of msg other than skip, as
// bytes in order.
func otherFields(t *testing.T, msg []byte, skip ...protowire.Number) []byte {
	t.Helper()
	fs, err := fields(msg)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, f := range fs {
		if !slices.Contains(skip, f.num) {
			out = append(out, f.raw...)
		}
	}
	return out
}

type importSummary struct{ Where, Type, Ref string }

func summarize(imps []Import) []importSummary {
	var out []importSummary
	for _, i := range imps {
		out = append(out, importSummary{i.Where, i.Type, i.Ref()})
	}
	return out
}

// controlRequest is a SolveRequest with imports in every place the
// control API carries them, among fields the gateway must not touch.
func controlRequest() []byte {
	cache := cat(
		tagBytes(1, []byte("export-ref")),                      // ExportRefDeprecated
		tagBytes(2, []byte("reg/a:old")),                       // ImportRefsDeprecated
		tagBytes(4, entry("registry", "ref", "reg/exp:cache")), // Exports: not imports
		tagBytes(5, entry("registry", "mode", "max", "ref", "reg/b:cache")),
		tagBytes(5, entry("local", "src", "/tmp/c")),
		tagVarint(50, 1), // unknown in CacheOptions
	)
	return cat(
		tagBytes(1, []byte("ref-1")),                  // Ref
		tagBytes(2, []byte("\x0a\x03llb definition")), // Definition
		mapField(7, "build-arg:FOO", "bar"),           // FrontendAttrs, other key
		mapField(7, "cache-imports", `[{"Type":"registry","Attrs":{"ref":"reg/c:cache"}},{"Type":"gha","Attrs":{"scope":"x"}}]`),
		tagBytes(8, cache),
		mapField(7, "cache-from", "reg/d:1,reg/e:2"),
		tagBytes(9, []byte("network.host")), // Entitlements
		unknowns,
	)
}

func TestControlSolveImports(t *testing.T) {
	imps, err := controlSolve.imports(controlRequest())
	if err != nil {
		t.Fatal(err)
	}
	want := []importSummary{
		{"FrontendAttrs[cache-imports]", "registry", "reg/c:cache"},
		{"FrontendAttrs[cache-imports]", "gha", ""},
		{"Cache.ImportRefsDeprecated", "registry", "reg/a:old"},
		{"Cache.Imports", "registry", "reg/b:cache"},
		{"Cache.Imports", "local", ""},
		{"FrontendAttrs[cache-from]", "registry", "reg/d:1"},
		{"FrontendAttrs[cache-from]", "registry", "reg/e:2"},
	}
	if diff := cmp.Diff(want, summarize(imps)); diff != "" {
		t.Errorf("imports (-want +got):\n%s", diff)
	}
	if got := imps[3].Attrs["mode"]; got != "max" {
		t.Errorf("Cache.Imports attrs %v; want mode=max kept", imps[3].Attrs)
	}
}

func TestRewriteKeepsRequestWhenAllKept(t *testing.T) {
	req := controlRequest()
	imps, err := controlSolve.imports(req)
	if err != nil {
		t.Fatal(err)
	}
	out, err := controlSolve.rewrite(req, slices.Repeat([]Decision{{Action: decision.Passed}}, len(imps)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, req) {
		t.Errorf("rewrite with every import kept changed the request")
	}
}

// TestRewriteZeroDecisionRemoves: a decision left unset (the zero
// Decision) removes its import, and a Used decision without a reference is
// an error: the rewrite fails closed.
func TestRewriteZeroDecisionRemoves(t *testing.T) {
	req := controlRequest()
	imps, err := controlSolve.imports(req)
	if err != nil {
		t.Fatal(err)
	}
	out, err := controlSolve.rewrite(req, make([]Decision, len(imps)))
	if err != nil {
		t.Fatal(err)
	}
	if left, err := controlSolve.imports(out); err != nil || len(left) != 0 {
		t.Errorf("zero decisions left imports %v (%v); want none", left, err)
	}
	used := slices.Repeat([]Decision{{Action: decision.Used}}, len(imps))
	if out, err := controlSolve.rewrite(req, used); err == nil {
		t.Errorf("Used without a reference rewrote to %x; want an error", out)
	}
}

func TestControlSolveRewrite(t *testing.T) {
	req := controlRequest()
	decisions := []Decision{
		{Action: decision.Used, Ref: "127.0.0.1:1/tok/1@sha256:c"}, // cache-imports registry
		{Action: decision.Dropped},                                 // cache-imports gha
		{Action: decision.Used, Ref: "127.0.0.1:1/tok/2@sha256:a"}, // ImportRefsDeprecated
		{Action: decision.Used, Ref: "127.0.0.1:1/tok/3@sha256:b"}, // Cache.Imports registry
		{Action: decision.Passed},                                  // Cache.Imports local
		{Action: decision.Dropped},                                 // cache-from reg/d:1
		{Action: decision.Used, Ref: "127.0.0.1:1/tok/4@sha256:e"}, // cache-from reg/e:2
	}
	out, err := controlSolve.rewrite(req, decisions)
	if err != nil {
		t.Fatal(err)
	}
	imps, err := controlSolve.imports(out)
	if err != nil {
		t.Fatalf("the rewritten request does not decode: %v", err)
	}
	want := []importSummary{
		{"FrontendAttrs[cache-imports]", "registry", "127.0.0.1:1/tok/1@sha256:c"},
		{"Cache.ImportRefsDeprecated", "registry", "127.0.0.1:1/tok/2@sha256:a"},
		{"Cache.Imports", "registry", "127.0.0.1:1/tok/3@sha256:b"},
		{"Cache.Imports", "local", ""},
		{"FrontendAttrs[cache-from]", "registry", "127.0.0.1:1/tok/4@sha256:e"},
	}
	if diff := cmp.Diff(want, summarize(imps)); diff != "" {
		t.Errorf("imports after rewrite (-want +got):\n%s", diff)
	}
	if imps[2].Attrs["mode"] != "max" {
		t.Errorf("rewritten Cache.Imports entry lost its attributes: %v", imps[2].Attrs)
	}
	if got, want := otherFields(t, out, 7, 8), otherFields(t, req, 7, 8); !bytes.Equal(got, want) {
		t.Errorf("fields without imports changed:\n got %q\nwant %q", got, want)
	}
	// Inside Cache: the export, the unknown field and the local import
	// are kept byte for byte.
	cacheOf := func(msg []byte) []byte {
		fs, _ := fields(msg)
		for _, f := range fs {
			if f.num == 8 {
				return f.val
			}
		}
		return nil
	}
	if got, want := otherFields(t, cacheOf(out), 2, 5), otherFields(t, cacheOf(req), 2, 5); !bytes.Equal(got, want) {
		t.Errorf("Cache fields without imports changed:\n got %q\nwant %q", got, want)
	}
	if !bytes.Contains(cacheOf(out), tagBytes(5, entry("local", "src", "/tmp/c"))) {
		t.Errorf("the kept local import is not byte for byte in the output")
	}
	// The other frontend attribute is kept as is.
	if !bytes.Contains(out, mapField(7, "build-arg:FOO", "bar")) {
		t.Errorf("FrontendAttrs build-arg:FOO lost")
	}
}

func TestRewriteRemovesEmptyAttribute(t *testing.T) {
	req := cat(mapField(7, "cache-from", "reg/x:1"), mapField(7, "cache-imports", `[{"Type":"registry","Attrs":{"ref":"reg/y:1"}}]`), unknowns)
	out, err := controlSolve.rewrite(req, []Decision{{Action: decision.Dropped}, {Action: decision.Dropped}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, unknowns) {
		t.Errorf("rewrite = %q; want only the unknown fields %q", out, unknowns)
	}
}

// A repeated map key: the server takes the last value. The gateway must
// decide that one, and not leave an earlier one behind.
func TestRepeatedAttributeLastWins(t *testing.T) {
	req := cat(
		mapField(7, "cache-from", "reg/first:1"),
		mapField(7, "cache-from", "reg/last:1"),
	)
	imps, err := controlSolve.imports(req)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]importSummary{{"FrontendAttrs[cache-from]", "registry", "reg/last:1"}}, summarize(imps)); diff != "" {
		t.Fatalf("imports (-want +got):\n%s", diff)
	}
	out, err := controlSolve.rewrite(req, []Decision{{Action: decision.Used, Ref: "ep/1@sha256:x"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := mapField(7, "cache-from", "ep/1@sha256:x"); !bytes.Equal(out, want) {
		t.Errorf("rewrite = %q; want %q", out, want)
	}
}

// Inside an entry, a repeated Type or attribute: the last wins.
func TestRepeatedEntryFieldsLastWins(t *testing.T) {
	e := cat(tagBytes(1, []byte("local")), tagBytes(1, []byte("registry")),
		mapField(2, "ref", "reg/decoy:1"), mapField(2, "ref", "reg/real:1"))
	imps, err := bridgeSolve.imports(tagBytes(12, e))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]importSummary{{"CacheImports", "registry", "reg/real:1"}}, summarize(imps)); diff != "" {
		t.Errorf("imports (-want +got):\n%s", diff)
	}
}

func TestBridgeSolveRewrite(t *testing.T) {
	req := cat(
		tagBytes(1, []byte("definition")),
		tagBytes(2, []byte("dockerfile.v0")),
		mapField(3, "cache-imports", `[{"type":"registry","attrs":{"ref":"reg/lower:1"}}]`),
		tagBytes(12, entry("registry", "ref", "reg/a:1")),
		tagVarint(14, 1),
		tagBytes(12, entry("s3", "bucket", "b")),
		unknowns,
	)
	imps, err := bridgeSolve.imports(req)
	if err != nil {
		t.Fatal(err)
	}
	want := []importSummary{
		// encoding/json matches field names case-insensitively, as
		// BuildKit's decoding does.
		{"FrontendOpt[cache-imports]", "registry", "reg/lower:1"},
		{"CacheImports", "registry", "reg/a:1"},
		{"CacheImports", "s3", ""},
	}
	if diff := cmp.Diff(want, summarize(imps)); diff != "" {
		t.Fatalf("imports (-want +got):\n%s", diff)
	}
	out, err := bridgeSolve.rewrite(req, []Decision{{Action: decision.Dropped}, {Action: decision.Used, Ref: "ep/1@sha256:a"}, {Action: decision.Dropped}})
	if err != nil {
		t.Fatal(err)
	}
	imps, err = bridgeSolve.imports(out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]importSummary{{"CacheImports", "registry", "ep/1@sha256:a"}}, summarize(imps)); diff != "" {
		t.Errorf("imports after rewrite (-want +got):\n%s", diff)
	}
	if got, want := otherFields(t, out, 3, 12), otherFields(t, req, 3, 12); !bytes.Equal(got, want) {
		t.Errorf("fields without imports changed:\n got %q\nwant %q", got, want)
	}
}

func TestMalformedRequests(t *testing.T) {
	many := strings.Repeat("reg/x:1,", MaxImports) + "reg/x:1"
	for name, req := range map[string][]byte{
		"truncated tag":            {0x80},
		"truncated length":         {0x42, 0x10, 'a'},
		"field number zero":        {0x02, 0x00},
		"Cache as varint":          tagVarint(8, 1),
		"FrontendAttrs as varint":  tagVarint(7, 1),
		"Cache.Imports as varint":  tagBytes(8, tagVarint(5, 1)),
		"bad Cache":                tagBytes(8, []byte{0x2a, 0x05, 0x0a}),
		"bad entry":                tagBytes(8, tagBytes(5, []byte{0x0a, 0x7f})),
		"Attrs key as varint":      tagBytes(8, tagBytes(5, tagBytes(2, tagVarint(1, 3)))),
		"cache-imports not JSON":   mapField(7, "cache-imports", "[{"),
		"cache-imports not a list": mapField(7, "cache-imports", `{"Type":"registry"}`),
		"cache-imports attrs type": mapField(7, "cache-imports", `[{"Type":"registry","Attrs":{"ref":1}}]`),
		"invalid UTF-8 ref":        tagBytes(8, tagBytes(2, []byte("reg/\xff"))),
		"invalid UTF-8 attr":       mapField(7, "cache-from", "reg/\xff"),
		"too many imports":         mapField(7, "cache-from", many),
		"too large":                cat(tagBytes(2, make([]byte, MaxRequestSize)), mapField(7, "cache-from", "reg/x:1")),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := controlSolve.imports(req)
			var m *MalformedError
			if !errors.As(err, &m) {
				t.Fatalf("imports(%q) = %v; want a MalformedError", name, err)
			}
		})
	}
}

func TestNoImports(t *testing.T) {
	for _, req := range [][]byte{nil, unknowns, mapField(7, "cache-imports", ""), tagBytes(8, tagBytes(4, entry("registry", "ref", "x")))} {
		imps, err := controlSolve.imports(req)
		if err != nil || len(imps) != 0 {
			t.Errorf("imports(%q) = %v, %v; want none", req, imps, err)
		}
	}
}

// FuzzShapes: no input panics; a request that decodes, rewritten with
// every import removed, decodes with no import left; with every import
// replaced, every import left has the replacement ref.
func FuzzShapes(f *testing.F) {
	f.Add(controlRequest())
	f.Add(cat(tagBytes(12, entry("registry", "ref", "a")), mapField(3, "cache-from", "a,b")))
	f.Add(cat(mapField(7, "cache-from", "x"), mapField(7, "cache-from", "y")))
	f.Add(tagBytes(8, cat(tagBytes(2, []byte("r")), tagBytes(2, []byte("s")))))
	f.Fuzz(func(t *testing.T, req []byte) {
		for _, sh := range []shape{controlSolve, bridgeSolve} {
			imps, err := sh.imports(req)
			if err != nil {
				continue
			}
			removed, err := sh.rewrite(req, slices.Repeat([]Decision{{Action: decision.Dropped}}, len(imps)))
			if err != nil {
				t.Fatalf("rewrite (remove all): %v", err)
			}
			if left, err := sh.imports(removed); err != nil || len(left) != 0 {
				t.Fatalf("after removing every import: %v, %v", summarize(left), err)
			}
			const pinned = "ep/1@sha256:0"
			replaced, err := sh.rewrite(req, slices.Repeat([]Decision{{Action: decision.Used, Ref: pinned}}, len(imps)))
			if err != nil {
				t.Fatalf("rewrite (replace all): %v", err)
			}
			left, err := sh.imports(replaced)
			if err != nil {
				t.Fatalf("after replacing every import: %v", err)
			}
			for _, i := range left {
				if i.Ref() != pinned {
					t.Fatalf("after replacing every import, %+v left (attrs %v)", i, slices.Collect(maps.Keys(i.Attrs)))
				}
			}
		}
	})
}
