package plugin

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/docker-trustcache/docker-trustcache/internal/dockerconfig"
)

// useDockerConfig gives the test (run in parallel) a testEnv of its own
// and returns it with the path of its docker config file.
func useDockerConfig(t *testing.T) (*testEnv, string) {
	t.Helper()
	t.Parallel()
	te := newTestEnv(t, nil)
	return te, te.env.dockerConfigFile()
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
	t.Parallel()
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
			te, path := useDockerConfig(t)
			if tc.before != nil {
				writeConfig(t, path, *tc.before, 0o644)
			}
			res := te.run(tc.args...)
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
				delete(want, dockerconfig.AliasesKey)
				delete(gotM, dockerconfig.AliasesKey)
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
	t.Parallel()
	for _, before := range []string{
		`{"auths": {"r": {"auth": "YTpi"}}, "credsStore": "pass", "x": [1, 2.0]}`,
		`{}`,
		`{"aliases": {"other": "x"}}`,
	} {
		t.Run(before, func(t *testing.T) {
			te, path := useDockerConfig(t)
			writeConfig(t, path, before, 0o640)
			for _, args := range [][]string{
				{"install", "--alias-builder"},
				{"install", "--alias-builder"},
				{"uninstall", "--alias-builder"},
				{"uninstall", "--alias-builder"},
			} {
				if res := te.run(args...); res.code != 0 {
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
	t.Parallel()
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
			te, path := useDockerConfig(t)
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
			if res := te.run("install", "--alias-builder"); res.code != 0 {
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

			if res := te.run("uninstall", "--alias-builder"); res.code != 0 {
				t.Fatalf("uninstall = exit %d, %q", res.code, res.stderr)
			}
			if _, err := os.Readlink(path); err != nil {
				t.Errorf("after uninstall, %s is no longer a link: %v", path, err)
			}
		})
	}
}

// statOwner returns the owner, group and permissions of path (symbolic
// links followed), skipping the test where files have no owner.
func statOwner(t *testing.T, path string) (uid, gid int, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	uid, gid, ok := dockerconfig.FileOwner(fi)
	if !ok {
		t.Skip("files have no owner on this system")
	}
	return uid, gid, fi.Mode().Perm()
}

// needRoot skips a test that changes files' owners unless it runs as root,
// as it does in CI.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user (CI runs the tests as root): run go test as root to run it")
	}
}

// TestInstallKeepsOwnerAndMode: run as root on another user's docker config
// (sudo with DOCKER_CONFIG=/home/u/.docker), install and uninstall keep the
// file's owner, group and mode, as the docker CLI's own save does: the user
// does not lose their credentials to root. Through a symbolic link (the
// user's, to the user's file), the link stays a link and its target keeps
// them.
func TestInstallKeepsOwnerAndMode(t *testing.T) {
	t.Parallel()
	needRoot(t)
	const uid, gid, mode = 12345, 12345, os.FileMode(0o640)
	const before = `{"auths": {"registry.example.com": {"auth": "dXNlcjpwYXNz"}}}`
	for _, link := range []bool{false, true} {
		t.Run(map[bool]string{false: "file", true: "symlink"}[link], func(t *testing.T) {
			te, path := useDockerConfig(t)
			dir := filepath.Dir(path)
			target := path
			if link {
				target = filepath.Join(filepath.Dir(dir), "dotfiles", "config.json")
			}
			writeConfig(t, target, before, mode)
			for _, p := range []string{filepath.Dir(target), target} {
				if err := os.Chown(p, uid, gid); err != nil {
					t.Fatal(err)
				}
			}
			if link {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, path); err != nil {
					t.Fatal(err)
				}
				if err := os.Lchown(path, uid, gid); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chown(dir, uid, gid); err != nil {
				t.Fatal(err)
			}
			for _, step := range []struct {
				args []string
				want string
			}{
				{[]string{"install", "--alias-builder"}, `{"auths": {"registry.example.com": {"auth": "dXNlcjpwYXNz"}}, "aliases": {"builder": "trustcache"}}`},
				{[]string{"uninstall", "--alias-builder"}, before},
			} {
				if res := te.run(step.args...); res.code != 0 {
					t.Fatalf("%v = exit %d, %q", step.args, res.code, res.stderr)
				}
				if gotUID, gotGID, gotMode := statOwner(t, target); gotUID != uid || gotGID != gid || gotMode != mode {
					t.Errorf("after %v, %s is owned by %d:%d with mode %v; want %d:%d and %v kept", step.args, target, gotUID, gotGID, gotMode, uid, gid, mode)
				}
				got, err := os.ReadFile(target)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(jsonValue(t, []byte(step.want)), jsonValue(t, got)); diff != "" {
					t.Errorf("after %v: config (-want +got):\n%s", step.args, diff)
				}
				if link {
					if got, err := os.Readlink(path); err != nil || got != target {
						t.Errorf("after %v, %s is no longer the link to %s: %q, %v", step.args, path, target, got, err)
					}
				}
				assertNoTempFiles(t, filepath.Dir(target))
			}
		})
	}
}

// TestInstallRefusesAnotherUsersLink: run as root, install and uninstall
// follow a config.json that is another user's symbolic link only to a file
// of that user's. The user could point it at a file of root's (a
// daemon.json, which an "aliases" key would stop dockerd from starting) or
// at a new file in a directory of root's, and root would write there.
func TestInstallRefusesAnotherUsersLink(t *testing.T) {
	t.Parallel()
	needRoot(t)
	const uid, gid = 12345, 12345
	tests := []struct {
		name   string
		target *string // the file the link points at, root's; nil: none
		args   []string
	}{
		{"install to root's file", func() *string { s := `{"debug": true}`; return &s }(), []string{"install", "--alias-builder"}},
		{"install to a new file in root's directory", nil, []string{"install", "--alias-builder"}},
		{"uninstall from root's file", func() *string { s := `{"aliases": {"builder": "trustcache"}}`; return &s }(), []string{"uninstall", "--alias-builder"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te, path := useDockerConfig(t)
			dir := filepath.Dir(path)
			rootDir := filepath.Join(filepath.Dir(dir), "etc-docker")
			if err := os.MkdirAll(rootDir, 0o755); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(rootDir, "daemon.json")
			if tc.target != nil {
				writeConfig(t, target, *tc.target, 0o644)
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{dir, path} {
				if err := os.Lchown(p, uid, gid); err != nil {
					t.Fatal(err)
				}
			}
			res := te.run(tc.args...)
			if res.code != ExitUsage || !strings.Contains(res.stderr, path) || !strings.Contains(res.stderr, "symbolic link") {
				t.Errorf("%v through uid %d's link to root's %s = exit %d, %q; want exit %d naming the link", tc.args, uid, target, res.code, res.stderr, ExitUsage)
			}
			got, err := os.ReadFile(target)
			switch {
			case tc.target == nil && err == nil:
				t.Errorf("%v created %s through uid %d's link: %q", tc.args, target, uid, got)
			case tc.target != nil && string(got) != *tc.target:
				t.Errorf("%v changed %s through uid %d's link to %q", tc.args, target, uid, got)
			}
			assertNoTempFiles(t, rootDir)
		})
	}
}

// setBuildKit sets DOCKER_BUILDKIT in te, or unsets it (value nil).
func setBuildKit(te *testEnv, value *string) {
	delete(te.vars, "DOCKER_BUILDKIT")
	if value != nil {
		te.vars["DOCKER_BUILDKIT"] = *value
	}
}

// TestInstallBuildKitWarning: the docker CLI reads DOCKER_BUILDKIT before
// the builder alias, and a false value (as strconv.ParseBool reads it)
// sends docker build to the legacy builder, which never runs docker
// trustcache and reuses a pulled --cache-from image unverified. install
// warns when it runs with such a value, naming the variable and what it
// does, and every install says that DOCKER_BUILDKIT=0 bypasses the alias.
func TestInstallBuildKitWarning(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	tests := []struct {
		value *string // nil: unset
		warn  string  // in stderr; "": no warning
	}{
		{nil, ""},
		{str(""), ""}, // the docker CLI ignores an empty value
		{str("1"), ""},
		{str("true"), ""},
		{str("0"), "WARNING: DOCKER_BUILDKIT=0 is set: docker build runs the legacy builder, which ignores the builder alias: " +
			"docker trustcache does not run and --cache-from images are used unverified. Fix: unset DOCKER_BUILDKIT or set DOCKER_BUILDKIT=1"},
		{str("false"), "WARNING: DOCKER_BUILDKIT=false is set: docker build runs the legacy builder"},
		{str("F"), "WARNING: DOCKER_BUILDKIT=F is set: docker build runs the legacy builder"},
		{str("off"), `WARNING: DOCKER_BUILDKIT="off" is not a boolean: the docker CLI refuses to run docker build`},
	}
	for _, tc := range tests {
		name := "unset"
		if tc.value != nil {
			name = "DOCKER_BUILDKIT=" + *tc.value
		}
		for _, before := range []string{"", `{"aliases": {"builder": "trustcache"}}`} {
			t.Run(name+"/"+map[bool]string{true: "new", false: "already installed"}[before == ""], func(t *testing.T) {
				te, path := useDockerConfig(t)
				if before != "" {
					writeConfig(t, path, before, 0o600)
				}
				setBuildKit(te, tc.value)
				res := te.run("install", "--alias-builder")
				if res.code != 0 {
					t.Fatalf("install = exit %d, %q", res.code, res.stderr)
				}
				if tc.warn != "" && !strings.Contains(res.stderr, tc.warn) {
					t.Errorf("install with %s: stderr %q; want a warning containing %q", name, res.stderr, tc.warn)
				}
				if tc.warn == "" && strings.Contains(res.stderr, "WARNING") {
					t.Errorf("install with %s warned: %q", name, res.stderr)
				}
				if !strings.Contains(res.stderr, "DOCKER_BUILDKIT=0") || !strings.Contains(res.stderr, "install --check") {
					t.Errorf("install with %s: stderr %q does not say that DOCKER_BUILDKIT=0 bypasses the alias and how to check", name, res.stderr)
				}
				if res.stdout != "" {
					t.Errorf("install wrote %q on stdout; want nothing", res.stdout)
				}
			})
		}
	}
}

// TestInstallCheck: "install --check" exits 0 only when a docker build run
// in the same environment reaches docker trustcache build — the builder
// alias is trustcache, DOCKER_BUILDKIT does not turn BuildKit off, and the
// docker-buildx plugin the build runs is there — and otherwise exits 2,
// printing every problem with its fix. It writes nothing.
func TestInstallCheck(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	const installed = `{"aliases": {"builder": "trustcache"}}`
	tests := []struct {
		name     string
		config   *string // nil: no config file; %EXTRA% is a plugin dir
		buildkit *string // nil: unset
		buildx   string  // where docker-buildx is: "config" ($DOCKER_CONFIG/cli-plugins), "extra", "noexec" or "" (nowhere)
		code     int
		want     []string // in stdout when code is 0, else in stderr
	}{
		{name: "routed", config: str(installed), buildx: "config", want: []string{"ok"}},
		{name: "routed with DOCKER_BUILDKIT=1", config: str(installed), buildkit: str("1"), buildx: "config", want: []string{"ok"}},
		{name: "buildx in cliPluginsExtraDirs", config: str(`{"aliases": {"builder": "trustcache"}, "cliPluginsExtraDirs": ["%EXTRA%"]}`), buildx: "extra", want: []string{"ok"}},
		{
			name: "no config file", buildx: "config", code: ExitUsage,
			want: []string{"no builder alias", "docker trustcache install --alias-builder"},
		},
		{
			name: "no alias", config: str(`{"aliases": {"other": "x"}}`), buildx: "config", code: ExitUsage,
			want: []string{"no builder alias", "docker trustcache install --alias-builder"},
		},
		{
			name: "another alias", config: str(`{"aliases": {"builder": "buildx"}}`), buildx: "config", code: ExitUsage,
			want: []string{`the builder alias is "buildx", not "trustcache"`, "docker trustcache install --alias-builder --force"},
		},
		{
			name: "DOCKER_BUILDKIT=0", config: str(installed), buildkit: str("0"), buildx: "config", code: ExitUsage,
			want: []string{"DOCKER_BUILDKIT=0", "legacy builder", "unverified", "unset DOCKER_BUILDKIT or set DOCKER_BUILDKIT=1"},
		},
		{
			name: "DOCKER_BUILDKIT=false", config: str(installed), buildkit: str("false"), buildx: "config", code: ExitUsage,
			want: []string{"DOCKER_BUILDKIT=false", "legacy builder"},
		},
		{
			name: "DOCKER_BUILDKIT not a boolean", config: str(installed), buildkit: str("yes"), buildx: "config", code: ExitUsage,
			want: []string{`DOCKER_BUILDKIT="yes" is not a boolean`, "unset DOCKER_BUILDKIT or set DOCKER_BUILDKIT=1"},
		},
		{
			name: "no buildx", config: str(installed), code: ExitUsage,
			want: []string{"docker-buildx", "not found", "https://docs.docker.com/go/buildx/"},
		},
		{
			name: "buildx not executable", config: str(installed), buildx: "noexec", code: ExitUsage,
			want: []string{"docker-buildx", "not found"},
		},
		{
			name: "every problem at once", config: str(`{}`), buildkit: str("0"), code: ExitUsage,
			want: []string{"no builder alias", "DOCKER_BUILDKIT=0", "docker-buildx"},
		},
		{
			name: "malformed config", config: str(`{"aliases": [}`), buildx: "config", code: ExitUsage,
			want: []string{"invalid JSON"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te, path := useDockerConfig(t)
			extra := filepath.Join(filepath.Dir(filepath.Dir(path)), "extra-plugins")
			if tc.config != nil {
				writeConfig(t, path, strings.ReplaceAll(*tc.config, "%EXTRA%", extra), 0o600)
			}
			before, _ := os.ReadFile(path)
			switch tc.buildx {
			case "config":
				writeExecutable(t, filepath.Join(filepath.Dir(path), "cli-plugins", "docker-buildx"), "#!/bin/sh\n", 0o755)
			case "extra":
				writeExecutable(t, filepath.Join(extra, "docker-buildx"), "#!/bin/sh\n", 0o755)
			case "noexec":
				writeExecutable(t, filepath.Join(filepath.Dir(path), "cli-plugins", "docker-buildx"), "#!/bin/sh\n", 0o644)
			}
			setBuildKit(te, tc.buildkit)
			res := te.run("install", "--check")
			if res.code != tc.code {
				t.Errorf("install --check = exit %d, stdout %q, stderr %q; want exit %d", res.code, res.stdout, res.stderr, tc.code)
			}
			out := res.stderr
			if tc.code == 0 {
				out = res.stdout
			} else if res.stdout != "" {
				t.Errorf("install --check failing wrote %q on stdout; want nothing", res.stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("install --check: %q does not contain %q", out, w)
				}
			}
			if !strings.Contains(out, path) {
				t.Errorf("install --check: %q does not name %s", out, path)
			}
			after, err := os.ReadFile(path)
			if tc.config == nil && err == nil {
				t.Errorf("install --check created %s", path)
			}
			if !bytes.Equal(after, before) {
				t.Errorf("install --check changed %s to %q", path, after)
			}
		})
	}
}

// TestInstallCheckFlags: --check only checks; it does not take --force.
func TestInstallCheckFlags(t *testing.T) {
	te, _ := useDockerConfig(t)
	res := te.run("install", "--check", "--force")
	if res.code != ExitUsage || !strings.Contains(res.stderr, "--check does not take --force") {
		t.Errorf("install --check --force = exit %d, %q; want exit %d naming both flags", res.code, res.stderr, ExitUsage)
	}
}
