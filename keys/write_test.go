package keys

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteKeyPair(t *testing.T) {
	priv, pub := []byte("private PEM\n"), []byte("public PEM\n")
	tests := []struct {
		name      string
		existing  []string // files in dir beforehand
		keyName   string
		wantErr   string // "" means success
		wantErrIs error
	}{
		{name: "new pair", keyName: "ci-main"},
		{name: "name with dots inside", keyName: "ci.main.v2"},
		{name: "other files around", existing: []string{"other.key"}, keyName: "ci-main"},
		{name: "private key exists", existing: []string{"ci-main.key"}, keyName: "ci-main", wantErr: "ci-main.key", wantErrIs: fs.ErrExist},
		{name: "public key exists", existing: []string{"ci-main.pub"}, keyName: "ci-main", wantErr: "ci-main.pub", wantErrIs: fs.ErrExist},
		{name: "both exist", existing: []string{"ci-main.key", "ci-main.pub"}, keyName: "ci-main", wantErrIs: fs.ErrExist},
		{name: "empty name", keyName: "", wantErr: "key name is empty"},
		{name: "leading dot", keyName: ".hidden", wantErr: "starts with a dot"},
		{name: "dot dot", keyName: "..", wantErr: "starts with a dot"},
		{name: "slash", keyName: "a/b", wantErr: "contains a path separator"},
		{name: "backslash", keyName: `a\b`, wantErr: "contains a path separator"},
		{name: "parent escape", keyName: "../x", wantErr: "starts with a dot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			before := map[string]string{}
			for _, f := range tt.existing {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("old "+f), 0o600); err != nil {
					t.Fatal(err)
				}
				before[f] = "old " + f
			}
			privPath, pubPath, err := WriteKeyPair(dir, tt.keyName, priv, pub)
			if tt.wantErr == "" && tt.wantErrIs == nil {
				if err != nil {
					t.Fatalf("WriteKeyPair(%q) = %v; want nil error", tt.keyName, err)
				}
				want := [2]string{filepath.Join(dir, tt.keyName+".key"), filepath.Join(dir, tt.keyName+".pub")}
				if got := [2]string{privPath, pubPath}; got != want {
					t.Errorf("WriteKeyPair(%q) paths = %q; want %q", tt.keyName, got, want)
				}
				checkFile(t, privPath, priv, 0o600)
				checkFile(t, pubPath, pub, 0o644)
				return
			}
			if err == nil {
				t.Fatalf("WriteKeyPair(%q) = %q, %q, nil; want an error", tt.keyName, privPath, pubPath)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("WriteKeyPair(%q) = %v; want an error containing %q", tt.keyName, err, tt.wantErr)
			}
			if tt.wantErrIs != nil && !errors.Is(err, tt.wantErrIs) {
				t.Errorf("WriteKeyPair(%q) = %v; want %v", tt.keyName, err, tt.wantErrIs)
			}
			if diff := cmp.Diff(before, dirContents(t, dir)); diff != "" {
				t.Errorf("WriteKeyPair(%q) changed the directory (-want +got):\n%s", tt.keyName, diff)
			}
		})
	}
}

func TestWriteKeyPairMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	_, _, err := WriteKeyPair(dir, "k", []byte("a"), []byte("b"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteKeyPair(%q) = %v; want %v", dir, err, fs.ErrNotExist)
	}
}

// TestWriteKeyPairCleanup makes the second file fail and checks that the
// first one is removed.
func TestWriteKeyPairCleanup(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("disk full")
	calls := 0
	create := func(path string, data []byte, mode fs.FileMode) error {
		calls++
		if calls == 2 {
			return boom
		}
		return writeNewFile(path, data, mode)
	}
	_, _, err := writeKeyPair(dir, "k", []byte("a"), []byte("b"), create)
	if !errors.Is(err, boom) {
		t.Errorf("writeKeyPair(failing second file) = %v; want %v", err, boom)
	}
	if got := dirContents(t, dir); len(got) != 0 {
		t.Errorf("writeKeyPair(failing second file) left %v; want an empty directory", got)
	}
}

// TestWriteKeyPairRace checks O_EXCL: a file that appears after the check is
// still not overwritten.
func TestWriteKeyPairRace(t *testing.T) {
	dir := t.TempDir()
	pubPath := filepath.Join(dir, "k.pub")
	calls := 0
	create := func(path string, data []byte, mode fs.FileMode) error {
		calls++
		if calls == 2 {
			if err := os.WriteFile(pubPath, []byte("theirs"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return writeNewFile(path, data, mode)
	}
	_, _, err := writeKeyPair(dir, "k", []byte("a"), []byte("b"), create)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), pubPath) {
		t.Errorf("writeKeyPair(racing) = %v; want an error naming %s wrapping %v", err, pubPath, fs.ErrExist)
	}
	want := map[string]string{"k.pub": "theirs"}
	if diff := cmp.Diff(want, dirContents(t, dir)); diff != "" {
		t.Errorf("writeKeyPair(racing) directory (-want +got):\n%s", diff)
	}
}

func TestWriteKeyPairGenerated(t *testing.T) {
	password := []byte("pw")
	fx := fixtureKeyPair(t, string(password))
	privPath, pubPath, err := WriteKeyPair(t.TempDir(), "builder", fx.privPEM, fx.pubPEM)
	if err != nil {
		t.Fatalf("WriteKeyPair(generated) = %v; want nil error", err)
	}
	var warnings []string
	signer, err := LoadSigner(privPath, func(bool) ([]byte, error) { return password, nil },
		WithWarnings(func(m string) { warnings = append(warnings, m) }))
	if err != nil {
		t.Fatalf("LoadSigner(%q) = %v; want nil error", privPath, err)
	}
	if len(warnings) != 0 {
		t.Errorf("LoadSigner(%q) warned %q; want no warning for a file WriteKeyPair wrote", privPath, warnings)
	}
	pub, err := LoadPublicKey(pubPath, "")
	if err != nil {
		t.Fatalf("LoadPublicKey(%q) = %v; want nil error", pubPath, err)
	}
	if diff := cmp.Diff(pub, signer.Public()); diff != "" {
		t.Errorf("public key of %s (-want +got):\n%s", privPath, diff)
	}
}

// checkFile checks a file's content, and that its mode has no bits beyond
// want (the umask may clear some) and keeps the owner's read bit.
func checkFile(t *testing.T, path string, want []byte, mode fs.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("content of %s (-want +got):\n%s", path, diff)
	}
	if runtime.GOOS == "windows" {
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^mode != 0 || perm&0o400 == 0 {
		t.Errorf("mode of %s = %#o; want %#o (less the umask)", path, perm, mode)
	}
}

// dirContents maps each file name in dir to its content.
func dirContents(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got[e.Name()] = string(b)
	}
	return got
}
