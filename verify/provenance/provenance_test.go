package provenance

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const hexA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func sample(t *testing.T) Statement {
	t.Helper()
	sub, err := NewSubject("registry.example/team/cache", "sha256:"+hexA)
	if err != nil {
		t.Fatal(err)
	}
	return New([]Subject{sub}, Predicate{
		Trustcache: "v1.2.3",
		Policy:     Policy{File: ".trustcache.yaml", Digest: "sha256:" + hexA},
		Source:     Source{Repository: "github.com/acme/app", Ref: "refs/heads/main", Commit: "abc"},
		BuiltAt:    "2026-01-02T03:04:05Z",
		Caches: []Cache{
			{Reference: "type=registry,ref=r/c:main", Type: "registry", Digest: "sha256:" + hexA, Verdict: "trusted",
				Action: ActionUsed, Guarantee: GuaranteeVerifiedBytes, Signers: []Signer{{Builder: "ci", KeyID: "sha256:" + hexA, SignedAt: "2026-01-02T03:04:05Z"}}},
			{Reference: "type=local,src=/c", Type: "local", Action: ActionPassed},
			{Reference: "r/x:main", Type: "registry", Verdict: "untrusted", Action: ActionDropped, Target: "app"},
		},
	})
}

func TestRoundTrip(t *testing.T) {
	want := sample(t)
	data, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse(Marshal()) = %v", err)
	}
	if diff := cmp.Diff(want, *got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestParseRejects(t *testing.T) {
	good, _ := sample(t).Marshal()
	for _, tc := range []struct{ name, old, new, want string }{
		{"statement type", StatementType, "https://in-toto.io/Statement/v0.1", "statement type"},
		{"predicate type", PredicateType, "https://slsa.dev/provenance/v1", "predicate type"},
		{"subject digest", `"sha256":"` + hexA + `"}}]`, `"sha512":"` + hexA + `"}}]`, "subject 0"},
		{"action", `"action":"passed"`, `"action":"smuggled"`, "unknown action"},
		{"guarantee", `"guarantee":"verified-bytes"`, `"guarantee":"trust-me"`, "unknown guarantee"},
		{"unknown field", `"trustcacheVersion"`, `"extra":1,"trustcacheVersion"`, "unknown field"},
		{"policy digest", `"digest":"sha256:` + hexA + `"},"source"`, `"digest":"md5:x"},"source"`, "policy digest"},
		{"trailing data", `}}`, `}} {}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := string(good)
			if tc.name == "trailing data" {
				s += " {}"
			} else if !strings.Contains(s, tc.old) {
				t.Fatalf("sample has no %q: %s", tc.old, s)
			} else {
				s = strings.Replace(s, tc.old, tc.new, 1)
			}
			_, err := Parse([]byte(s))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%s) = %v; want an error saying %q", tc.name, err, tc.want)
			}
		})
	}
	if _, err := Parse(make([]byte, MaxSize+1)); err == nil {
		t.Error("Parse of an oversized record succeeded")
	}
}

func TestNewSubject(t *testing.T) {
	for _, d := range []string{"", "sha256:abc", "sha512:" + hexA, "sha256:" + strings.ToUpper(hexA)} {
		if _, err := NewSubject("r", d); err == nil {
			t.Errorf("NewSubject(%q) = nil error; want one", d)
		}
	}
}

func FuzzParse(f *testing.F) {
	good, _ := New(nil, Predicate{}).Marshal()
	f.Add(good)
	st := Statement{}
	data, _ := st.Marshal()
	f.Add(data)
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"` + PredicateType + `","subject":[{"name":"r","digest":{"sha256":"` + hexA + `"}}],"predicate":{"caches":[{"reference":"x","action":"used","type":"registry"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		// What Parse accepts marshals to a record it accepts again, unchanged.
		out, err := s.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed record: %v", err)
		}
		s2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(Parse(%q))) = %v", data, err)
		}
		if diff := cmp.Diff(s, s2); diff != "" {
			t.Fatalf("re-parse differs (-first +second):\n%s", diff)
		}
	})
}

// TestSameRecord: a record that differs only in builtAt is the same; one
// from another commit, or data that is no record, is not.
func TestSameRecord(t *testing.T) {
	st := sample(t)
	same := st.SameRecord()
	later := sample(t)
	later.Predicate.BuiltAt = "2099-01-01T00:00:00Z"
	other := sample(t)
	other.Predicate.Source.Commit = "another"
	for _, tc := range []struct {
		name string
		s    Statement
		want bool
	}{{"later", later, true}, {"another commit", other, false}} {
		data, err := tc.s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if got := same(data); got != tc.want {
			t.Errorf("SameRecord(%s) = %v; want %v", tc.name, got, tc.want)
		}
	}
	if same([]byte(`{"not":"a record"}`)) {
		t.Errorf("SameRecord(not a record) = true")
	}
}
