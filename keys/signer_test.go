package keys

import (
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoadSigner(t *testing.T) {
	password := []byte("hunter2")
	fx, empty := fixtureKeyPair(t, string(password)), fixtureKeyPair(t, "")
	privPEM, emptyPriv := fx.privPEM, empty.privPEM
	wantPub, wantEmptyPub := fx.key.Public(), empty.key.Public()
	der, err := x509.MarshalPKCS8PrivateKey(mustECDSA(t, elliptic.P256()))
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // the umask may have taken bits
			t.Fatal(err)
		}
		return p
	}
	private := write("private.key", privPEM, 0o600)
	groupReadable := write("group.key", privPEM, 0o640)
	worldReadable := write("world.key", privPEM, 0o644)
	emptyPassword := write("empty.key", emptyPriv, 0o600)
	plain := write("plain.key", pemOf("PRIVATE KEY", der), 0o600)
	pubPEM, err := MarshalPublicKeyPEM(wantPub)
	if err != nil {
		t.Fatal(err)
	}
	public := write("world.pub", pubPEM, 0o644) // beside world.key
	lonePublic := write("lone.pub", pubPEM, 0o644)
	t.Setenv("TRUSTCACHE_TEST_KEY", string(privPEM))
	t.Setenv("TRUSTCACHE_TEST_EMPTY", "")

	fixed := func(pw []byte) PasswordFunc {
		return func(bool) ([]byte, error) { return append([]byte(nil), pw...), nil }
	}
	failing := func(bool) ([]byte, error) { return nil, ErrNoPassword }

	tests := []struct {
		name      string
		ref       string
		pass      PasswordFunc
		wantPub   any
		wantErrIs error
		wantErr   string
		wantWarn  string // substring of the only warning; "" means no warning
		wantAsked bool   // whether pass must have been called
	}{
		{name: "file", ref: private, pass: fixed(password), wantPub: wantPub, wantAsked: true},
		{name: "env", ref: "env://TRUSTCACHE_TEST_KEY", pass: fixed(password), wantPub: wantPub, wantAsked: true},
		{name: "inline", ref: string(privPEM), pass: fixed(password), wantPub: wantPub, wantAsked: true},
		{name: "nil pass means empty password", ref: emptyPassword, pass: nil, wantPub: wantEmptyPub},
		{name: "group readable", ref: groupReadable, pass: fixed(password), wantPub: wantPub, wantAsked: true,
			wantWarn: "private key file " + groupReadable + " has mode 0640"},
		{name: "world readable", ref: worldReadable, pass: fixed(password), wantPub: wantPub, wantAsked: true,
			wantWarn: "private key file " + worldReadable + " has mode 0644"},
		{name: "wrong password", ref: private, pass: fixed([]byte("nope")), wantErrIs: ErrWrongPassword, wantAsked: true,
			wantErr: "private key \"" + private + "\": decrypting private key: wrong password"},
		{name: "password func fails", ref: private, pass: failing, wantErrIs: ErrNoPassword, wantAsked: true},
		{name: "unencrypted key is refused before asking", ref: plain, pass: failing, wantErr: "not encrypted"},
		// A public key given by mistake: said so, with the private key
		// beside it, and no advice to chmod a public key.
		{name: "public key beside its private key", ref: public, pass: failing,
			wantErr: `PEM block "PUBLIC KEY" is a public key, which the policy lists: pass the private key instead (did you mean ` + worldReadable + `?)`},
		{name: "public key", ref: lonePublic, pass: failing, wantErr: "is a public key, which the policy lists: pass the private key instead"},
		{name: "missing file", ref: filepath.Join(dir, "missing.key"), pass: failing, wantErrIs: os.ErrNotExist},
		{name: "unset variable", ref: "env://TRUSTCACHE_TEST_UNSET", pass: failing, wantErr: "TRUSTCACHE_TEST_UNSET is not set"},
		{name: "empty variable", ref: "env://TRUSTCACHE_TEST_EMPTY", pass: failing, wantErr: "TRUSTCACHE_TEST_EMPTY is not set"},
		{name: "empty ref", ref: "", pass: failing, wantErr: "empty key reference"},
		{name: "awskms", ref: "awskms:///arn:aws:kms:us-east-1:1:key/2", pass: failing, wantErrIs: ErrKMSNotSupported,
			wantErr: "KMS keys are not supported in this build"},
		{name: "gcpkms", ref: "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", pass: failing, wantErrIs: ErrKMSNotSupported},
		{name: "azurekms", ref: "azurekms://vault.vault.azure.net/key", pass: failing, wantErrIs: ErrKMSNotSupported},
		{name: "hashivault", ref: "hashivault://transit-key", pass: failing, wantErrIs: ErrKMSNotSupported},
		{name: "other scheme", ref: "k8s://ns/secret", pass: failing, wantErr: `scheme "k8s://" is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if KMSSupported && errors.Is(tt.wantErrIs, ErrKMSNotSupported) {
				t.Skip("this build signs with KMS keys (-tags kms): kms_test.go covers it")
			}
			var warnings []string
			asked := false
			pass := tt.pass
			if pass != nil {
				pass = func(confirm bool) ([]byte, error) {
					asked = true
					if confirm {
						t.Errorf("LoadSigner asked for the password with confirm true")
					}
					return tt.pass(confirm)
				}
			}
			got, err := LoadSigner(tt.ref, pass, WithWarnings(func(msg string) { warnings = append(warnings, msg) }))
			switch {
			case tt.wantErrIs == nil && tt.wantErr == "":
				if err != nil {
					t.Fatalf("LoadSigner(%q) = %v; want nil error", tt.name, err)
				}
				if diff := cmp.Diff(tt.wantPub, got.Public()); diff != "" {
					t.Errorf("LoadSigner(%q) public key (-want +got):\n%s", tt.name, diff)
				}
			case err == nil:
				t.Fatalf("LoadSigner(%q) = %T, nil; want an error", tt.name, got)
			default:
				if tt.wantErrIs != nil && !errors.Is(err, tt.wantErrIs) {
					t.Errorf("LoadSigner(%q) = %v; want %v", tt.name, err, tt.wantErrIs)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("LoadSigner(%q) = %v; want an error containing %q", tt.name, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "BEGIN") {
					t.Errorf("LoadSigner(%q) = %v; the error quotes PEM text", tt.name, err)
				}
			}
			if asked != tt.wantAsked {
				t.Errorf("LoadSigner(%q) asked for a password: %v; want %v", tt.name, asked, tt.wantAsked)
			}
			wantWarn := tt.wantWarn
			if runtime.GOOS == "windows" {
				wantWarn = ""
			}
			switch {
			case wantWarn == "" && len(warnings) > 0:
				t.Errorf("LoadSigner(%q) warned %q; want no warning", tt.name, warnings)
			case wantWarn != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], wantWarn)):
				t.Errorf("LoadSigner(%q) warned %q; want one warning containing %q", tt.name, warnings, wantWarn)
			}
		})
	}
}

// TestLoadSignerWithoutWarnings checks that warnings are dropped by default.
func TestLoadSignerWithoutWarnings(t *testing.T) {
	p := filepath.Join(t.TempDir(), "open.key")
	if err := os.WriteFile(p, fixtureKeyPair(t, "").privPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigner(p, nil); err != nil {
		t.Fatalf("LoadSigner(%q) = %v; want nil error", p, err)
	}
}

func TestLoadPublicKeyKMS(t *testing.T) {
	_, err := LoadPublicKey("awskms:///alias/builder", t.TempDir())
	if !errors.Is(err, ErrKMSNotSupported) {
		t.Errorf("LoadPublicKey(%q) = %v; want %v", "awskms:///alias/builder", err, ErrKMSNotSupported)
	}
}
