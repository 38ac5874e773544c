package termtext

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
)

func TestLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"plain text, ünïcode", "plain text, ünïcode"},
		{"a\nb", "a\\nb"},
		{"erase\r\x1b[2Kforged", `erase\r\x1b[2Kforged`},
		{"right\u202eleft", `right\u202eleft`},
		{"bad \xff byte", `bad \xff byte`},
	} {
		if got := Line(tc.in); got != tc.want {
			t.Errorf("Line(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
	if got := Lines("one\ntwo\x1b"); got != "one\ntwo\\x1b" {
		t.Errorf("Lines kept %q; want the newline kept, the escape escaped", got)
	}
}

// FuzzRedactPEM checks that an error message holding a PEM block, whatever
// surrounds it and whether it is quoted, never shows the block's body
// after RedactPEM.
func FuzzRedactPEM(f *testing.F) {
	f.Add("bad flag syntax: ", []byte("0123456789abcdefghijklmnop"), "\n\nUsage: x", false)
	f.Add(`--format: unknown format `, []byte("0123456789abcdefghijklmnop0123456789"), ` (want text or json)`, true)
	f.Add("-----BEGIN X-----", []byte("0123456789abcdefghijklmnop"), "-----END X-----", false)
	f.Add("-----BEGIN \"", []byte("0123456789abcdefghijklmnop"), "", true)
	f.Fuzz(func(t *testing.T, prefix string, body []byte, suffix string, quote bool) {
		if len(body) < 12 {
			return
		}
		block := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: body}))
		if quote {
			b, _ := json.Marshal(block)
			block = string(b)
		}
		out := RedactPEM(prefix + block + suffix)
		enc := base64.StdEncoding.EncodeToString(body)
		for i := 0; i+16 <= len(enc); i += 16 {
			if w := enc[i : i+16]; strings.Contains(out, w) && !strings.Contains(prefix+suffix, w) {
				t.Fatalf("RedactPEM(%q) = %q shows %q of the PEM body", prefix+block+suffix, out, w)
			}
		}
	})
}
