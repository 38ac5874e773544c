package endpoint

import (
	"strings"
	"testing"
)

// FuzzParseRoute: no path is routed to a name unless it starts with
// /v2/<token>/, and a routed name is one path component.
func FuzzParseRoute(f *testing.F) {
	const token = "0123456789abcdef0123456789abcdef"
	for _, seed := range []string{
		"/v2/", "/v2", "/v2/_catalog",
		"/v2/" + token + "/1/manifests/sha256:" + strings.Repeat("a", 64),
		"/v2/" + token + "/1/blobs/sha256:" + strings.Repeat("b", 64),
		"/v2/" + token + "/../" + token + "/1/blobs/x",
		"/v2/" + token + "//manifests/x",
		"/v2/" + strings.ToUpper(token) + "/1/manifests/x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		r := parseRoute(path, token)
		switch r.kind {
		case routeNone, routeBase:
			if r.name != "" || r.ref != "" {
				t.Errorf("parseRoute(%q) = %+v; want no name", path, r)
			}
			if r.kind == routeBase && path != "/v2/" && path != "/v2" {
				t.Errorf("parseRoute(%q) = /v2/; want only /v2/ so", path)
			}
		default:
			if !strings.HasPrefix(path, "/v2/"+token+"/") {
				t.Errorf("parseRoute(%q) = %+v; want nothing routed without the token", path, r)
			}
			if r.name == "" || strings.Contains(r.name, "/") {
				t.Errorf("parseRoute(%q) name = %q; want one path component", path, r.name)
			}
		}
	})
}

// FuzzParseDigest: only canonical sha256 digests parse, and they print
// back the same.
func FuzzParseDigest(f *testing.F) {
	for _, seed := range []string{"sha256:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("A", 64), "sha512:ab", "latest", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := parseDigest(s)
		if ok && h.String() != s {
			t.Errorf("parseDigest(%q) = %s; want it unchanged", s, h)
		}
	})
}

// FuzzParseManifest: verified bytes of any shape are parsed without a
// panic, and what they refer to is kept within bounds.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":1}]}`))
	f.Add([]byte(`{"config":{"digest":"sha256:` + strings.Repeat("b", 64) + `","size":-1},"layers":[null]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		src := newSource("r@d", digestOf(b), nil)
		m := parseManifest(b)
		src.add(m)
		if len(src.manifests) > maxManifests {
			t.Errorf("%d manifests reachable; want at most %d", len(src.manifests), maxManifests)
		}
		for d, desc := range src.blobs {
			if d.Algorithm != "sha256" || desc.Size < 0 {
				t.Errorf("blob %s of size %d reachable; want sha256 and a size", d, desc.Size)
			}
		}
		_ = mediaTypeOf(m.MediaType, "", "", m)
	})
}
