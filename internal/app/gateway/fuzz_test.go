package gateway

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/docker-trustcache/docker-trustcache/verify/decision"
)

// Requests shaped as the clients send them (BuildKit v0.34.2's client,
// as buildx v0.38, bake, buildctl and a raw LLB client fill them in).

// exporter is a moby.buildkit.v1.Exporter.
func exporter(typ string, attrs ...string) []byte {
	b := tagBytes(1, []byte(typ))
	for i := 0; i < len(attrs); i += 2 {
		b = append(b, mapField(2, attrs[i], attrs[i+1])...)
	}
	return b
}

const (
	seedBuild   = "k5yd7ts3eqfnxv4w0ujz1h3gr"
	seedSession = "uqzlxn0bq1y0j5y6h0l4mdz3w"
	seedImports = `[{"Type":"registry","Attrs":{"ref":"reg.example/team/cache:signed"}}]`
)

// buildxControlSolve: buildx runs a build as a client-side frontend: the
// control API's Solve has no Frontend, its attributes, exporters and
// cache options.
func buildxControlSolve() []byte {
	return cat(
		tagBytes(ctlSolveRef, []byte(seedBuild)),
		tagBytes(ctlSolveSession, []byte(seedSession)),
		mapField(ctlSolveFrontendAttrs, "cache-imports", seedImports),
		mapField(ctlSolveFrontendAttrs, "context", "context"),
		mapField(ctlSolveFrontendAttrs, "filename", "Dockerfile"),
		mapField(ctlSolveFrontendAttrs, "force-network-mode", "none"),
		mapField(ctlSolveFrontendAttrs, "local-sessionid:context", seedSession),
		mapField(ctlSolveFrontendAttrs, "local-sessionid:dockerfile", seedSession),
		tagBytes(8, cat(
			tagBytes(4, entry("registry", "mode", "max", "ref", "reg.example/team/cache:new")),
			tagBytes(5, entry("registry", "ref", "reg.example/team/cache:signed")),
		)),
		tagBytes(9, []byte("network.host")),
		tagBytes(13, exporter("image", "name", "reg.example/team/app:latest", "push", "true")),
		tagVarint(16, 1),
	)
}

// buildxBridgeSolve: the frontend's Solve in the build: the Dockerfile
// frontend with the same attributes and imports.
func buildxBridgeSolve() []byte {
	return cat(
		tagBytes(brSolveFrontend, []byte("dockerfile.v0")),
		mapField(brSolveFrontendOpt, "cache-imports", seedImports),
		mapField(brSolveFrontendOpt, "context", "context"),
		mapField(brSolveFrontendOpt, "local-sessionid:context", seedSession),
		tagVarint(5, 1), tagVarint(6, 1),
		tagBytes(12, entry("registry", "ref", "reg.example/team/cache:signed")),
		tagVarint(14, 1),
	)
}

// buildctlSolve: buildctl build --frontend dockerfile.v0 --import-cache
// … --output type=local.
func buildctlSolve() []byte {
	return cat(
		tagBytes(ctlSolveRef, []byte(seedBuild)),
		tagBytes(ctlSolveSession, []byte(seedSession)),
		tagBytes(ctlSolveFrontend, []byte("dockerfile.v0")),
		mapField(ctlSolveFrontendAttrs, "cache-imports", seedImports),
		mapField(ctlSolveFrontendAttrs, "cache-from", "reg.example/team/cache:old"),
		tagBytes(8, tagBytes(5, entry("registry", "ref", "reg.example/team/cache:signed"))),
		tagBytes(13, exporter("local")),
	)
}

// bakeSolve: bake's targets each send buildx's request; one with several
// imports of several types.
func bakeSolve() []byte {
	return cat(
		tagBytes(ctlSolveRef, []byte(seedBuild)),
		tagBytes(ctlSolveSession, []byte(seedSession)),
		mapField(ctlSolveFrontendAttrs, "cache-imports", `[{"Type":"registry","Attrs":{"ref":"reg.example/a:1"}},{"Type":"local","Attrs":{"src":"/tmp/c"}},{"Type":"gha","Attrs":{"scope":"x"}}]`),
		tagBytes(8, cat(
			tagBytes(5, entry("registry", "ref", "reg.example/a:1")),
			tagBytes(5, entry("local", "src", "/tmp/c")),
		)),
	)
}

// rawLLBSolve: a raw client's definition with a local source of its
// session and an image, its source policy and a frontend input.
func rawLLBSolve() []byte {
	def := cat(sourceDef("local://context", attrLocalSession, seedSession, "local.sharedkeyhint", "context"),
		sourceDef("docker-image://docker.io/library/busybox:latest"))
	return cat(
		tagBytes(ctlSolveRef, []byte(seedBuild)),
		tagBytes(ctlSolveSession, []byte(seedSession)),
		tagBytes(ctlSolveDefinition, def),
		tagBytes(ctlSolveFrontendInputs, cat(tagBytes(1, []byte("ctx")), tagBytes(2, def))),
		tagBytes(ctlSolveSourcePolicy, cat(tagVarint(1, 1), tagBytes(policyRules, tagBytes(ruleUpdates, tagBytes(1, []byte("docker-image://mirror/busybox")))))),
	)
}

// Field numbers only the seeds use.
const (
	ctlSolveFrontend protowire.Number = 6
	brSolveFrontend  protowire.Number = 2
)

// fuzzMethods are the methods whose requests the gateway decodes.
var fuzzMethods = []string{mControlSolve, mBridgeSolve, mStatus, mListenBuildHistory, mUpdateBuildHistory, mResolveImageConfig, mResolveSourceMeta}

// buildkitEntry is how BuildKit's Dockerfile frontend decodes the
// cache-imports attribute (frontend/dockerui: []*controlapi.CacheOptionsEntry,
// each dereferenced).
type buildkitEntry struct {
	Type  string
	Attrs map[string]string
}

// FuzzRequest: whatever a client sends, the gateway neither panics nor
// forwards what crashes buildkitd's decoders: a request it lets through
// (as given, with every import removed, or every import replaced) decodes
// as protobuf, its cache-imports decode with no nil entry and every
// import has a type, and it names the same build and sessions as the
// request the checks were made on.
func FuzzRequest(f *testing.F) {
	for _, seed := range []struct {
		method int
		req    []byte
	}{
		{0, buildxControlSolve()},
		{1, buildxBridgeSolve()},
		{0, buildctlSolve()},
		{0, bakeSolve()},
		{0, rawLLBSolve()},
		{1, tagBytes(brSolveDefinition, sourceDef("local://context", attrLocalSession, "x:"+seedSession))},
		{2, tagBytes(statusRef, []byte(seedBuild))},
		{3, cat(tagVarint(1, 1), tagBytes(historyReqRef, []byte(seedBuild)))},
		{4, cat(tagBytes(updateHistoryRef, []byte(seedBuild)), tagVarint(2, 1))},
		{5, cat(tagBytes(1, []byte("docker.io/library/busybox:latest")), tagBytes(resolveImageSessionID, []byte(seedSession)))},
		{6, tagBytes(resolveSourceSource, cat(tagBytes(1, []byte("oci-layout://s/x")), mapField(sourceAttrs, attrOCISession, seedSession)))},
		// Crashers of buildkitd v0.34.2 (#21): a null entry.
		{0, mapField(ctlSolveFrontendAttrs, "cache-imports", "[null]")},
		{1, mapField(brSolveFrontendOpt, "cache-imports", `[{"Type":"registry","Attrs":{"ref":"a"}},null]`)},
	} {
		f.Add(byte(seed.method), seed.req)
	}
	f.Fuzz(func(t *testing.T, m byte, req []byte) {
		method := fuzzMethods[int(m)%len(fuzzMethods)]
		n, err := requestNames(method, req)
		historyEventRef(req)
		if err != nil {
			return
		}
		sh, ok := inspected[method]
		if !ok {
			return
		}
		if _, err := sh.frontend(req); err != nil {
			return
		}
		imps, err := sh.imports(req)
		if err != nil {
			return
		}
		for _, d := range []Decision{{Action: decision.Passed}, {Action: decision.Dropped}, {Action: decision.Used, Ref: "127.0.0.1:1/tok/0@sha256:0"}} {
			out, err := sh.rewrite(req, slices.Repeat([]Decision{d}, len(imps)))
			if err != nil {
				t.Fatalf("rewrite (%v): %v", d.Action, err)
			}
			checkForwarded(t, sh, method, out, n)
		}
	})
}

// checkForwarded checks out, a request the gateway forwards, as buildkitd
// would decode it.
func checkForwarded(t *testing.T, sh shape, method string, out []byte, n names) {
	t.Helper()
	fs, err := fields(out)
	if err != nil {
		t.Fatalf("forwarded request does not decode: %v", err)
	}
	for _, f := range fs {
		switch f.num {
		case sh.attrs:
			k, v, err := mapEntry(f.val, sh.attrsName)
			if err != nil {
				t.Fatalf("forwarded attribute does not decode: %v", err)
			}
			if string(k) != attrCacheImports || len(v) == 0 {
				continue
			}
			var list []*buildkitEntry
			if err := json.Unmarshal(v, &list); err != nil {
				t.Fatalf("forwarded cache-imports %q does not decode: %v", v, err)
			}
			for i, e := range list {
				if e == nil {
					t.Fatalf("forwarded cache-imports %q: entry %d is nil (buildkitd dereferences it)", v, i)
				}
				if e.Type == "" {
					t.Fatalf("forwarded cache-imports %q: entry %d has no type", v, i)
				}
			}
		}
	}
	if imps, err := sh.imports(out); err != nil {
		t.Fatalf("forwarded request's imports: %v", err)
	} else {
		for _, i := range imps {
			if i.Type == "" {
				t.Fatalf("forwarded import with no type: %+v", i)
			}
		}
	}
	n2, err := requestNames(method, out)
	if err != nil {
		t.Fatalf("forwarded request's names: %v", err)
	}
	if n2.build != n.build || !slices.Equal(n2.sessions, n.sessions) {
		t.Fatalf("forwarded request names %+v; the checked one %+v", n2, n)
	}
}

// The crashers FuzzRequest keeps, refused with InvalidArgument naming
// the field.
func TestNullImportsRefused(t *testing.T) {
	for _, tc := range []struct {
		sh   shape
		req  []byte
		want string
	}{
		{controlSolve, mapField(7, "cache-imports", "[null]"), "FrontendAttrs[cache-imports][0] is null"},
		{bridgeSolve, mapField(3, "cache-imports", `[{"Type":"registry","Attrs":{"ref":"a"}},null]`), "FrontendOpt[cache-imports][1] is null"},
		{controlSolve, mapField(7, "cache-imports", "null"), "FrontendAttrs[cache-imports] is null"},
		{controlSolve, mapField(7, "cache-imports", `[{"Type":null}]`), "FrontendAttrs[cache-imports][0] has no Type"},
		{controlSolve, mapField(7, "cache-imports", `[{"Attrs":{"ref":"a"}}]`), "FrontendAttrs[cache-imports][0] has no Type"},
		{controlSolve, mapField(7, "cache-imports", `[{"Type":"registry","Attrs":{"ref":null}}]`), "FrontendAttrs[cache-imports][0].Attrs[ref] is null"},
		{controlSolve, mapField(7, "cache-imports", `{"Type":"registry"}`), "FrontendAttrs[cache-imports]: json"},
		{controlSolve, mapField(7, "cache-from", "a,,b"), "FrontendAttrs[cache-from] has an empty reference"},
		{controlSolve, tagBytes(8, tagBytes(5, entry("", "ref", "a"))), "Cache.Imports has an entry with no Type"},
		{controlSolve, tagBytes(8, tagBytes(2, nil)), "Cache.ImportRefsDeprecated has an empty reference"},
		{bridgeSolve, tagBytes(12, entry("", "ref", "a")), "CacheImports has an entry with no Type"},
	} {
		_, err := tc.sh.imports(tc.req)
		var m *MalformedError
		if err == nil || !errors.As(err, &m) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("imports(%q) = %v; want a MalformedError saying %q", tc.req, err, tc.want)
		}
	}
}
