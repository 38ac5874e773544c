package keys

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPassword(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		terminal   bool
		input      string
		confirm    bool
		want       string
		wantErr    error
		wantPrompt string
	}{
		{name: "TRUSTCACHE_PASSWORD", env: map[string]string{PasswordEnv: "tc", CosignPasswordEnv: "co"}, want: "tc"},
		{name: "TRUSTCACHE_PASSWORD empty wins", env: map[string]string{PasswordEnv: "", CosignPasswordEnv: "co"}, want: ""},
		{name: "COSIGN_PASSWORD", env: map[string]string{CosignPasswordEnv: "co"}, terminal: true, input: "typed\n", want: "co"},
		{name: "COSIGN_PASSWORD empty", env: map[string]string{CosignPasswordEnv: ""}, want: ""},
		{name: "variable needs no confirmation", env: map[string]string{PasswordEnv: "tc"}, confirm: true, want: "tc"},
		{name: "prompt", terminal: true, input: "typed\nrest\n", want: "typed",
			wantPrompt: "Enter password for private key: "},
		{name: "prompt CRLF", terminal: true, input: "typed\r\n", want: "typed"},
		{name: "prompt empty line", terminal: true, input: "\n", want: ""},
		{name: "prompt without newline", terminal: true, input: "typed", want: "typed"},
		{name: "prompt confirm", terminal: true, input: "typed\ntyped\n", confirm: true, want: "typed",
			wantPrompt: "Enter password for private key: Enter password for private key again: "},
		{name: "prompt confirm mismatch", terminal: true, input: "typed\ntypo\n", confirm: true, wantErr: ErrPasswordMismatch},
		{name: "prompt confirm missing", terminal: true, input: "typed\n", confirm: true, wantErr: errAny},
		{name: "prompt no input", terminal: true, input: "", wantErr: errAny},
		{name: "no terminal, no variable", terminal: false, input: "typed\n", wantErr: ErrNoPassword},
		{name: "unrelated variables", env: map[string]string{"PASSWORD": "x"}, wantErr: ErrNoPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			isTerminal := func(io.Reader) bool { return tt.terminal }
			var out strings.Builder
			pf := Password(lookup, strings.NewReader(tt.input), &out, isTerminal)
			got, err := pf(tt.confirm)
			switch {
			case tt.wantErr == nil:
				if err != nil {
					t.Fatalf("Password(%s)(%v) = %v; want nil error", tt.name, tt.confirm, err)
				}
				if string(got) != tt.want {
					t.Errorf("Password(%s)(%v) = %q; want %q", tt.name, tt.confirm, got, tt.want)
				}
			case tt.wantErr == errAny:
				if err == nil {
					t.Errorf("Password(%s)(%v) = %q, nil; want an error", tt.name, tt.confirm, got)
				}
			default:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Password(%s)(%v) = %q, %v; want %v", tt.name, tt.confirm, got, err, tt.wantErr)
				}
			}
			if tt.wantPrompt != "" {
				if diff := cmp.Diff(tt.wantPrompt, out.String()); diff != "" {
					t.Errorf("Password(%s) prompts (-want +got):\n%s", tt.name, diff)
				}
			}
		})
	}
}

// errAny marks a test case that wants some error.
var errAny = errors.New("any error")

func TestErrNoPasswordNamesVariable(t *testing.T) {
	if !strings.Contains(ErrNoPassword.Error(), "TRUSTCACHE_PASSWORD") {
		t.Errorf("ErrNoPassword = %q; want it to name TRUSTCACHE_PASSWORD", ErrNoPassword)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "not-a-tty")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	tests := []struct {
		name string
		r    io.Reader
	}{
		{"regular file", f},
		{"strings.Reader", strings.NewReader("x")},
		{"nil", nil},
	}
	for _, tt := range tests {
		if IsTerminal(tt.r) {
			t.Errorf("IsTerminal(%s) = true; want false", tt.name)
		}
	}
}
