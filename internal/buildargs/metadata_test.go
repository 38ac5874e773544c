package buildargs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const mdDigest = "sha256:0123456789012345678901234567890123456789012345678901234567890123"

func writeMetadata(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "metadata.json")
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A build's metadata: the cache digest as an object or as a string holding
// one; a file that does not parse is an error naming it.
func TestReadMetadata(t *testing.T) {
	for _, cm := range []string{`{"digest":"` + mdDigest + `"}`, `"{\"digest\":\"` + mdDigest + `\"}"`} {
		md, err := ReadMetadata(writeMetadata(t, `{"cache.manifest":`+cm+`,"containerimage.digest":"`+mdDigest+`","image.name":"r/a,r/b"}`))
		if err != nil {
			t.Fatal(err)
		}
		if d, err := md.CacheDigest(); err != nil || d.String() != mdDigest {
			t.Fatalf("CacheDigest = %v, %v", d, err)
		}
		if md.ImageName != "r/a,r/b" || md.ImageDigest != mdDigest {
			t.Fatalf("metadata %+v", md)
		}
	}
	if _, err := (Metadata{}).CacheDigest(); err == nil || !strings.Contains(err.Error(), "no cache.manifest") {
		t.Fatalf("CacheDigest of nothing: %v", err)
	}
	bad := writeMetadata(t, `{`)
	if _, err := ReadMetadata(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("ReadMetadata of bad JSON: %v, want an error naming %s", err, bad)
	}
	if _, err := ReadMetadata(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("ReadMetadata of a missing file succeeded")
	}
}

// A bake's metadata: entries that are not targets (warnings) do not stop
// reading a target; a missing target is reported as such; a target entry
// that does not parse names the target.
func TestReadBakeMetadata(t *testing.T) {
	md, err := ReadBakeMetadata(writeMetadata(t, `{"buildx.build.warnings":[{"x":1}],"app":{"containerimage.digest":"`+mdDigest+`"},"bad":[1]}`))
	if err != nil {
		t.Fatal(err)
	}
	if app, ok, err := md.Target("app"); !ok || err != nil || app.ImageDigest != mdDigest {
		t.Fatalf("Target(app) = %+v %v %v", app, ok, err)
	}
	if _, ok, _ := md.Target("none"); ok {
		t.Fatal("Target(none) reported")
	}
	if _, ok, err := md.Target("bad"); !ok || err == nil || !strings.Contains(err.Error(), "target bad") {
		t.Fatalf("Target(bad) = %v %v", ok, err)
	}
	bad := writeMetadata(t, `[`)
	if _, err := ReadBakeMetadata(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("ReadBakeMetadata of bad JSON: %v", err)
	}
}
