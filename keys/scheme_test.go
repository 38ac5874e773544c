package keys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKindOf pins the key-reference rules the loaders and the policy
// parser share (verify/trustpolicy/policy_schema.go reads by them).
func TestKindOf(t *testing.T) {
	for ref, want := range map[string]RefKind{
		"":                               RefEmpty,
		"-----BEGIN PUBLIC KEY-----\n":   RefInline,
		"  \n-----BEGIN PUBLIC KEY-----": RefInline,
		"env://CI_PUB":                   RefEnv,
		"env://":                         RefEnv, // refused by the loader: names no variable
		"awskms://alias/ci":              RefKMS,
		"gcpkms://projects/p/k":          RefKMS,
		"azurekms://vault/k":             RefKMS,
		"hashivault://ci":                RefKMS,
		"https://example.com/ci.pub":     RefScheme,
		"k8s://ns/secret":                RefScheme,
		"keys/ci.pub":                    RefFile,
		"/etc/trustcache/ci.pub":         RefFile,
		"dir with space://x":             RefFile, // not a scheme: a file path
	} {
		if got := KindOf(ref); got != want {
			t.Errorf("KindOf(%q) = %d; want %d", ref, got, want)
		}
	}
	if got := DescribeRef("-----BEGIN PUBLIC KEY-----\nMFkw"); got != "(inline PEM)" {
		t.Errorf("DescribeRef(inline) = %q; want (inline PEM)", got)
	}
	if got := DescribeRef("keys/ci.pub"); got != `"keys/ci.pub"` {
		t.Errorf("DescribeRef(file) = %q", got)
	}
}

func TestCheckPublicKeyFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ci.pub"), []byte("-----BEGIN PUBLIC KEY-----\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "big.pub"), make([]byte, MaxPublicKeyFileSize+1), 0o644)
	os.Mkdir(filepath.Join(dir, "keys"), 0o755)
	if err := CheckPublicKeyFile("ci.pub", dir); err != nil {
		t.Errorf("CheckPublicKeyFile(ci.pub) = %v", err)
	}
	if err := CheckPublicKeyFile(filepath.Join(dir, "ci.pub"), "/elsewhere"); err != nil {
		t.Errorf("CheckPublicKeyFile(absolute) = %v", err)
	}
	for ref, want := range map[string]string{
		"keys":    "is not a regular file",
		"big.pub": "is larger than 65536 bytes",
		"no.pub":  "no such file",
	} {
		if err := CheckPublicKeyFile(ref, dir); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `"`+ref+`"`) {
			t.Errorf("CheckPublicKeyFile(%q) = %v; want an error naming it, containing %q", ref, err, want)
		}
	}
}
