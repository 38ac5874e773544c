//go:build kms

package keys

import (
	"errors"
	"strings"
	"testing"
)

// TestKMSBuild: with -tags kms, KMS references reach sigstore's providers
// (no longer ErrKMSNotSupported), and a provider that cannot reach its
// service fails to load with an error naming the reference.
func TestKMSBuild(t *testing.T) {
	if !KMSSupported {
		t.Fatal("KMSSupported = false in a -tags kms build")
	}
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:9")
	t.Setenv("VAULT_TOKEN", "test")
	s, err := LoadSigner("hashivault://trustcache-test", nil)
	if errors.Is(err, ErrKMSNotSupported) {
		t.Fatalf("LoadSigner(hashivault://…) = %v in a -tags kms build", err)
	}
	if err == nil || !strings.Contains(err.Error(), "hashivault://trustcache-test") {
		t.Fatalf("LoadSigner(hashivault://…) with no Vault reachable = %v, %v; want an error naming the reference", s, err)
	}
	t.Logf("error without a reachable Vault (as wanted): %v", err)
}
