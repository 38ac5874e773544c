package trustedbuilder

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writePub(t *testing.T, path string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writePolicy(t *testing.T, path, key string) {
	t.Helper()
	p := "version: 1\nbuilders:\n  - name: ci\n    key: " + key + "\nscopes:\n  - repositories: [\"127.0.0.1:5000/**\"]\n    builders: [ci]\n"
	if err := os.WriteFile(path, []byte(p), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The copy keeps the key files' relative layout and loads to the same
// digest and fingerprint; the builder then reads only the copy.
func TestSnapshotPolicyCopiesKeys(t *testing.T) {
	src := t.TempDir()
	writePub(t, filepath.Join(src, "keys", "ci.pub"))
	writePolicy(t, filepath.Join(src, "policy.yaml"), "keys/ci.pub")
	dst := filepath.Join(t.TempDir(), "policy")
	info, envs, err := snapshotPolicy(filepath.Join(src, "policy.yaml"), dst, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) != 0 {
		t.Errorf("envs = %v, want none", envs)
	}
	if info.File != filepath.Join(dst, "policy.yaml") || !strings.HasPrefix(info.Digest, "sha256:") || !strings.HasPrefix(info.Fingerprint, "sha256:") {
		t.Errorf("info = %+v", info)
	}
	if _, err := os.Stat(filepath.Join(dst, "keys", "ci.pub")); err != nil {
		t.Errorf("key not copied: %v", err)
	}
	// A later change of the source does not reach the copy.
	writePub(t, filepath.Join(src, "keys", "ci.pub"))
	a, _ := os.ReadFile(filepath.Join(src, "keys", "ci.pub"))
	b, _ := os.ReadFile(filepath.Join(dst, "keys", "ci.pub"))
	if string(a) == string(b) {
		t.Error("the copy follows the source")
	}
}

// A key outside the policy's directory cannot be copied with the same
// relative name: refused, naming the file.
func TestSnapshotPolicyRefusesOutsideFiles(t *testing.T) {
	root := t.TempDir()
	writePub(t, filepath.Join(root, "ci.pub"))
	for _, ref := range []string{"../ci.pub", filepath.Join(root, "ci.pub")} {
		src := filepath.Join(root, "p")
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		writePolicy(t, filepath.Join(src, "policy.yaml"), ref)
		_, _, err := snapshotPolicy(filepath.Join(src, "policy.yaml"), filepath.Join(t.TempDir(), "policy"), "")
		if err == nil || !strings.Contains(err.Error(), "outside its directory") || !strings.Contains(err.Error(), ref) {
			t.Errorf("key %s: err = %v, want outside its directory", ref, err)
		}
	}
}

// An invalid policy fails create before anything is made, with the
// policy's own error (file and line).
func TestSnapshotPolicyInvalid(t *testing.T) {
	src := t.TempDir()
	writePolicy(t, filepath.Join(src, "policy.yaml"), "keys/missing.pub")
	dst := filepath.Join(t.TempDir(), "policy")
	_, _, err := snapshotPolicy(filepath.Join(src, "policy.yaml"), dst, "")
	if err == nil || !strings.Contains(err.Error(), "policy.yaml:4") {
		t.Fatalf("err = %v, want the policy's error at line 4", err)
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("a copy was made of an invalid policy")
	}
}

func TestCheckNameAndAddr(t *testing.T) {
	for _, n := range []string{"", "A", "-x", "a/b", "../x", strings.Repeat("a", 49)} {
		if checkName(n) == nil {
			t.Errorf("checkName(%q) = nil", n)
		}
	}
	for _, n := range []string{"trustcache", "pr-jobs", "a.b_c"} {
		if err := checkName(n); err != nil {
			t.Errorf("checkName(%q) = %v", n, err)
		}
	}
	for _, a := range []string{"tcp://10.0.0.1:1234", "tcp://example.com:1", "unix://rel/path", "ssh://x"} {
		if checkBuildkitAddr(a) == nil {
			t.Errorf("checkBuildkitAddr(%q) = nil", a)
		}
	}
	if err := checkBuildkitAddr("tcp://127.0.0.1:1234"); err != nil {
		t.Error(err)
	}
}

func TestMissingCaps(t *testing.T) {
	got := missingFromStatus("Name:\tx\nCapBnd:\t000001fffeffffff\n")
	if len(got) != 1 || got[0] != "SYS_RESOURCE" {
		t.Errorf("missing = %v; want [SYS_RESOURCE]", got)
	}
	if got := missingFromStatus("CapBnd:\t000001ffffffffff\n"); got != nil {
		t.Errorf("full set: missing = %v", got)
	}
}
