package plugin

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
)

// FuzzParseAnnotations checks parseAnnotations (sign -a KEY=VALUE) on
// arbitrary flag values: it never panics, every failure is a usage error,
// and what it accepts is exactly the input — one entry per flag, keys
// trimmed, non-empty and not reserved, values as written after the first
// "=".
func FuzzParseAnnotations(f *testing.F) {
	for _, seed := range []string{
		"ref=refs/heads/main",
		"ref=refs/heads/main\x00repo=github.com/acme/app",
		"a=b=c",
		"=x",
		" =x",
		"novalue",
		"builder=me",
		" created =now",
		"ref=a\x00ref=b",
		"k=",
		" k \t=v",
		"identity=registry.example.com/other",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, joined string) {
		kvs := strings.Split(joined, "\x00")
		got, err := parseAnnotations("--annotation", kvs)
		if err != nil {
			var ue usageError
			if !errors.As(err, &ue) || got != nil {
				t.Fatalf("parseAnnotations(%q) = %v, %v; want nil and a usage error", kvs, got, err)
			}
			return
		}
		if len(got) != len(kvs) {
			t.Fatalf("parseAnnotations(%q) = %d entries; want %d", kvs, len(got), len(kvs))
		}
		for _, kv := range kvs {
			k, v, ok := strings.Cut(kv, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				t.Fatalf("parseAnnotations accepted %q, which is not KEY=VALUE", kv)
			}
			if k == signature.AnnotationBuilder || k == signature.AnnotationCreated {
				t.Fatalf("parseAnnotations accepted the reserved key in %q", kv)
			}
			if got[k] != v {
				t.Fatalf("parseAnnotations(%q)[%q] = %q; want %q", kvs, k, got[k], v)
			}
		}
	})
}

// FuzzCacheDigest checks the reader of buildx's "cache.manifest" build
// metadata, the digest --sign signs: it never panics, and a digest it
// returns is well-formed and is the one the metadata names.
func FuzzCacheDigest(f *testing.F) {
	d := "sha256:" + strings.Repeat("ab", 32)
	desc := `{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"` + d + `","size":1234}`
	quoted, _ := json.Marshal(desc)
	for _, seed := range []string{
		desc,
		string(quoted),
		`{"digest":"sha256:` + strings.Repeat("0", 63) + `"}`,
		`{"digest":"sha512:` + strings.Repeat("0", 128) + `"}`,
		`{"digest":"` + d + `","digest":"sha256:` + strings.Repeat("cd", 32) + `"}`,
		`"{\"digest\":\"` + d + `\"}"`,
		`"\"` + d + `\""`,
		`[]`,
		`null`,
		`""`,
		`{"Digest":"` + d + `"}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := buildargs.Metadata{CacheManifest: json.RawMessage(raw)}.CacheDigest()
		if err != nil {
			return
		}
		// A digest of another algorithm than sha256 is returned as it
		// parses; signing refuses it (signature.NewPayload).
		if back, err := v1.NewHash(h.String()); err != nil || back != h {
			t.Fatalf("cacheDigest(%q) = %v, which does not parse back: %v", raw, h, err)
		}
		// JSON may spell the digest with escapes; compare decoded text.
		text := string(raw)
		var s string
		if json.Unmarshal(raw, &s) == nil {
			text = s
		}
		var obj map[string]any
		if json.Unmarshal([]byte(text), &obj) == nil {
			found := false
			for _, v := range obj {
				if v == h.String() {
					found = true
				}
			}
			if !found {
				t.Fatalf("cacheDigest(%q) = %v, which the metadata does not name", raw, h)
			}
		}
	})
}
