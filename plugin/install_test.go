package plugin

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/cli/cli/config"
	"github.com/google/go-cmp/cmp"
)

// useDockerConfig isolates the test and points the docker config dir at
// its DOCKER_CONFIG (config.Dir reads the variable once per process). It
// returns the config file's path; the dir does not exist yet.
func useDockerConfig(t *testing.T) string {
	t.Helper()
	isolate(t)
	return filepath.Join(config.Dir(), config.ConfigFileName)
}

// writeConfig writes a docker config file (and its dir) for a test.
func writeConfig(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // despite the umask
		t.Fatal(err)
	}
}

// jsonValue decodes JSON keeping numbers as written.
func jsonValue(t *testing.T, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %q: %v", data, err)
	}
	return v
}

// compactMembers returns the top-level members of a JSON object, each
// compacted: the value as the docker CLI sees it, byte for byte.
func compactMembers(t *testing.T, data []byte) map[string]string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("decoding %q: %v", data, err)
	}
	out := map[string]string{}
	for k, raw := range m {
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			t.Fatal(err)
		}
		out[k] = b.String()
	}
	return out
}

const fullConfig = `{
  "auths": {
    "registry.example.com": {"auth": "dXNlcjpwYXNz"},
    "https://index.docker.io/v1/": {}
  },
  "credHelpers": {"gcr.io": "gcloud"},
  "psFormat": "table {{.ID}} <&>",
  "x-unknown": {"nested": [1, 2.50, {"big": 12345678901234567890123}], "t": true, "n": null},
  "aliases": {"other": "thing"}
}`

func TestInstallUninstall(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name   string
		before *string // nil: no config file
		args   []string
		code   int
		msg    string // in stderr
		after  string // the config's JSON value after; "": byte-identical to before, or still absent
	}{
		{
			name:   "install keeps every other key",
			before: str(fullConfig),
			args:   []string{"install", "--alias-builder"},
			msg:    `set "aliases.builder" to "trustcache"`,
			after: `{
  "auths": {"registry.example.com": {"auth": "dXNlcjpwYXNz"}, "https://index.docker.io/v1/": {}},
  "credHelpers": {"gcr.io": "gcloud"},
  "psFormat": "table {{.ID}} <&>",
  "x-unknown": {"nested": [1, 2.50, {"big": 12345678901234567890123}], "t": true, "n": null},
  "aliases": {"other": "thing", "builder": "trustcache"}
}`,
		},
		{
			name:   "install creates a missing file",
			before: nil,
			args:   []string{"install", "--alias-builder"},
			after:  `{"aliases": {"builder": "trustcache"}}`,
		},
		{
			name:   "install into an empty file",
			before: str("\n"),
			args:   []string{"install", "--alias-builder"},
			after:  `{"aliases": {"builder": "trustcache"}}`,
		},
		{
			name:   "install replaces a null aliases",
			before: str(`{"aliases": null, "k": 1}`),
			args:   []string{"install", "--alias-builder"},
			after:  `{"aliases": {"builder": "trustcache"}, "k": 1}`,
		},
		{
			name:   "install again changes nothing",
			before: str(`{"aliases":{"builder":"trustcache"},   "k":1}`),
			args:   []string{"install", "--alias-builder"},
			msg:    "already",
		},
		{
			name:   "install refuses invalid JSON",
			before: str("{\n  \"auths\": {},\n  \"aliases\": {\"builder\" \"x\"}\n}"),
			args:   []string{"install", "--alias-builder"},
			code:   ExitUsage,
			msg:    "config.json:3:",
		},
		{
			name:   "install refuses a config that is not an object",
			before: str(`["aliases"]`),
			args:   []string{"install", "--alias-builder"},
			code:   ExitUsage,
			msg:    "not a JSON object",
		},
		{
			name:   "install refuses aliases that is not an object",
			before: str(`{"aliases": ["builder"]}`),
			args:   []string{"install", "--alias-builder"},
			code:   ExitUsage,
			msg:    `"aliases" is ["builder"], not a JSON object`,
		},
		{
			name:   "install refuses another builder alias",
			before: str(`{"aliases": {"builder": "buildx"}}`),
			args:   []string{"install", "--alias-builder"},
			code:   ExitUsage,
			msg:    `"aliases.builder" is "buildx" (docker buildx install sets it), not "trustcache"`,
		},
		{
			name:   "install refuses a builder alias that is not a string",
			before: str(`{"aliases": {"builder": 5}}`),
			args:   []string{"install", "--alias-builder"},
			code:   ExitUsage,
			msg:    `"aliases.builder" is 5`,
		},
		{
			name:   "install --force replaces another builder alias",
			before: str(`{"aliases": {"builder": "buildx", "other": "x"}, "k": [1]}`),
			args:   []string{"install", "--alias-builder", "--force"},
			msg:    `replaced the builder alias "buildx"`,
			after:  `{"aliases": {"builder": "trustcache", "other": "x"}, "k": [1]}`,
		},
		{
			name:   "install needs --alias-builder",
			before: str(`{}`),
			args:   []string{"install"},
			code:   ExitUsage,
			msg:    "--alias-builder",
		},
		{
			name:   "uninstall removes only the builder alias",
			before: str(`{"aliases": {"builder": "trustcache", "other": "x"}, "auths": {"r": {"auth": "YTpi"}}}`),
			args:   []string{"uninstall", "--alias-builder"},
			msg:    `removed the builder alias "trustcache"`,
			after:  `{"aliases": {"other": "x"}, "auths": {"r": {"auth": "YTpi"}}}`,
		},
		{
			name:   "uninstall removes the aliases object it empties",
			before: str(`{"aliases": {"builder": "trustcache"}, "k": 1}`),
			args:   []string{"uninstall", "--alias-builder"},
			msg:    `and the "aliases" object`,
			after:  `{"k": 1}`,
		},
		{
			name:   "uninstall leaves another builder alias",
			before: str(`{"aliases": {"builder": "buildx"}}`),
			args:   []string{"uninstall", "--alias-builder"},
			msg:    `the builder alias is "buildx", not "trustcache"`,
		},
		{
			name:   "uninstall without an alias",
			before: str(`{"auths": {}}`),
			args:   []string{"uninstall", "--alias-builder"},
			msg:    "no builder alias",
		},
		{
			name:   "uninstall without a config file",
			before: nil,
			args:   []string{"uninstall", "--alias-builder"},
			msg:    "does not exist",
		},
		{
			name:   "uninstall refuses invalid JSON",
			before: str(`{"aliases": {"builder": "trustcache"},}`),
			args:   []string{"uninstall", "--alias-builder"},
			code:   ExitUsage,
			msg:    "invalid JSON",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := useDockerConfig(t)
			if tc.before != nil {
				writeConfig(t, path, *tc.before, 0o644)
			}
			res := run(t, tc.args...)
			if res.code != tc.code || !strings.Contains(res.stderr, tc.msg) {
				t.Errorf("%v = exit %d, %q; want exit %d containing %q", tc.args, res.code, res.stderr, tc.code, tc.msg)
			}
			if tc.code == ExitUsage && tc.msg != "--alias-builder" && !strings.Contains(res.stderr, path) {
				t.Errorf("%v: error %q does not name %s", tc.args, res.stderr, path)
			}
			if res.stdout != "" {
				t.Errorf("%v wrote %q on stdout; want nothing", tc.args, res.stdout)
			}
			got, err := os.ReadFile(path)
			if tc.after == "" {
				switch {
				case tc.before == nil && err == nil:
					t.Errorf("%v created %s: %q", tc.args, path, got)
				case tc.before != nil && string(got) != *tc.before:
					t.Errorf("%v changed %s to %q; want it untouched", tc.args, path, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(jsonValue(t, []byte(tc.after)), jsonValue(t, got)); diff != "" {
				t.Errorf("%v: config (-want +got):\n%s\n%s", tc.args, diff, got)
			}
			// Every key but aliases keeps its value byte for byte.
			if tc.before != nil && strings.TrimSpace(*tc.before) != "" {
				want, gotM := compactMembers(t, []byte(*tc.before)), compactMembers(t, got)
				delete(want, aliasesKey)
				delete(gotM, aliasesKey)
				if diff := cmp.Diff(want, gotM); diff != "" {
					t.Errorf("%v: other keys (-before +after):\n%s", tc.args, diff)
				}
			}
			if !strings.HasSuffix(string(got), "}\n") || (len(compactMembers(t, got)) > 0 && !strings.Contains(string(got), "{\n\t\"")) {
				t.Errorf("%v wrote %q; want tab-indented JSON ending in a newline", tc.args, got)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			wantMode := os.FileMode(0o644)
			if tc.before == nil {
				wantMode = 0o600
			}
			if fi.Mode().Perm() != wantMode {
				t.Errorf("%v: %s has mode %v; want %v", tc.args, path, fi.Mode().Perm(), wantMode)
			}
			if tc.before == nil {
				if di, err := os.Stat(filepath.Dir(path)); err != nil || di.Mode().Perm() != 0o700 {
					t.Errorf("%v: created config dir %v, %v; want mode 0700", tc.args, di.Mode().Perm(), err)
				}
			}
			assertNoTempFiles(t, filepath.Dir(path))
		})
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	tmps, _ := filepath.Glob(filepath.Join(dir, ".*.tmp*"))
	if len(tmps) > 0 {
		t.Errorf("temporary files left behind: %v", tmps)
	}
}

func TestInstallUninstallRoundTrip(t *testing.T) {
	for _, before := range []string{
		`{"auths": {"r": {"auth": "YTpi"}}, "credsStore": "pass", "x": [1, 2.0]}`,
		`{}`,
		`{"aliases": {"other": "x"}}`,
	} {
		t.Run(before, func(t *testing.T) {
			path := useDockerConfig(t)
			writeConfig(t, path, before, 0o640)
			for _, args := range [][]string{
				{"install", "--alias-builder"},
				{"install", "--alias-builder"},
				{"uninstall", "--alias-builder"},
				{"uninstall", "--alias-builder"},
			} {
				if res := run(t, args...); res.code != 0 {
					t.Fatalf("%v = exit %d, %q", args, res.code, res.stderr)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(jsonValue(t, []byte(before)), jsonValue(t, got)); diff != "" {
				t.Errorf("install + uninstall: config (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(compactMembers(t, []byte(before)), compactMembers(t, got)); diff != "" {
				t.Errorf("install + uninstall: members (-before +after):\n%s", diff)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
				t.Errorf("mode after install + uninstall = %v; want 0640 kept", fi.Mode().Perm())
			}
		})
	}
}

func TestInstallThroughSymlink(t *testing.T) {
	tests := []struct {
		name   string
		before *string // the target's content; nil: the target does not exist
		mode   os.FileMode
	}{
		{"existing target", func() *string { s := `{"auths": {}}`; return &s }(), 0o640},
		{"dangling link", nil, 0o600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := useDockerConfig(t)
			realDir := filepath.Join(filepath.Dir(filepath.Dir(path)), "dotfiles", "docker")
			target := filepath.Join(realDir, "config.json")
			if err := os.MkdirAll(realDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.before != nil {
				writeConfig(t, target, *tc.before, tc.mode)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join("..", "dotfiles", "docker", "config.json")
			if err := os.Symlink(link, path); err != nil {
				t.Fatal(err)
			}
			if res := run(t, "install", "--alias-builder"); res.code != 0 {
				t.Fatalf("install = exit %d, %q", res.code, res.stderr)
			}
			if got, err := os.Readlink(path); err != nil || got != link {
				t.Fatalf("after install, %s is no longer the link to %s: %q, %v", path, link, got, err)
			}
			got, err := os.ReadFile(target)
			if err != nil {
				t.Fatal(err)
			}
			want := `{"aliases": {"builder": "trustcache"}}`
			if tc.before != nil {
				want = `{"aliases": {"builder": "trustcache"}, "auths": {}}`
			}
			if diff := cmp.Diff(jsonValue(t, []byte(want)), jsonValue(t, got)); diff != "" {
				t.Errorf("link target (-want +got):\n%s", diff)
			}
			if fi, _ := os.Stat(target); fi.Mode().Perm() != tc.mode {
				t.Errorf("target mode = %v; want %v", fi.Mode().Perm(), tc.mode)
			}
			assertNoTempFiles(t, realDir)
			assertNoTempFiles(t, filepath.Dir(path))

			if res := run(t, "uninstall", "--alias-builder"); res.code != 0 {
				t.Fatalf("uninstall = exit %d, %q", res.code, res.stderr)
			}
			if _, err := os.Readlink(path); err != nil {
				t.Errorf("after uninstall, %s is no longer a link: %v", path, err)
			}
		})
	}
}
