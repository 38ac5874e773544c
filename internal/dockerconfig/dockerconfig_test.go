package dockerconfig

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The command-level behaviour (install, uninstall, --check, links, owners,
// modes) is tested in plugin/install_test.go; these pin the package's own
// contract: what is an InvalidError, and that other keys survive an edit.
func TestReadInvalid(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ content, want string }{
		{"[1]", "the docker config is not a JSON object"},
		{"{\n  \"a\": 1,\n  oops\n}", "config.json:3:3: invalid JSON"},
		{`{"aliases": "builder"}`, `"aliases" is "builder", not a JSON object`},
	} {
		path := filepath.Join(dir, "config.json")
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Read(path)
		var invalid *InvalidError
		if !errors.As(err, &invalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Read(%q): %v; want an InvalidError containing %q", tc.content, err, tc.want)
		}
	}
}

func TestEditKeepsOtherKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	orig := `{"auths": {"r.example": {"auth": "eA=="}}, "aliases": {"x": "y"}, "z-unknown": [1, 2.50, "<&>"]}`
	if err := os.WriteFile(path, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Read(path)
	if err != nil || !c.Exists() {
		t.Fatalf("Read: %v, exists %v", err, c != nil && c.Exists())
	}
	c.SetBuilder("trustcache")
	if err := c.Write(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	for _, s := range []string{`"r.example"`, `"auth": "eA=="`, `"x": "y"`, `"builder": "trustcache"`, `2.50`, `"<&>"`} {
		if !strings.Contains(string(got), s) {
			t.Errorf("after SetBuilder+Write the file lacks %s:\n%s", s, got)
		}
	}
	c, _ = Read(path)
	if b, ok := c.Builder(); !ok || !IsJSONString(b, "trustcache") {
		t.Errorf("Builder() = %s, %v", b, ok)
	}
	if emptied := c.RemoveBuilder(); emptied {
		t.Error("RemoveBuilder emptied an aliases object that still has x")
	}
}
