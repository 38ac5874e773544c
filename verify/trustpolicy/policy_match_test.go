package trustpolicy

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCanonicalRepository(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"nginx", "index.docker.io/library/nginx"},
		{"docker.io/nginx", "index.docker.io/library/nginx"},
		{"docker.io/library/nginx", "index.docker.io/library/nginx"},
		{"index.docker.io/nginx", "index.docker.io/library/nginx"},
		{"org/app", "index.docker.io/org/app"},
		{"docker.io/org/app", "index.docker.io/org/app"},
		{"org/team/app", "index.docker.io/org/team/app"},
		{"Docker.IO/Org/App", "index.docker.io/org/app"},
		{"localhost/app", "localhost/app"},
		{"localhost:5000/team/app", "localhost:5000/team/app"},
		{"registry.example.com/team/app-cache", "registry.example.com/team/app-cache"},
		{"registry.example.com:5000/Team/App", "registry.example.com:5000/team/app"},
		{"127.0.0.1:5000/x", "127.0.0.1:5000/x"},
		{"ghcr.io/o/a__b.c-d", "ghcr.io/o/a__b.c-d"},
	} {
		got, err := CanonicalRepository(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CanonicalRepository(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestCanonicalRepositoryErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"registry.example.com/app:latest",
		"registry.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
		"registry.example.com/",
		"registry.example.com//app",
		"registry.example.com/-app",
		"registry.example.com/app-",
		"registry.example.com/a b",
		"registry.example.com/team/*",
		" nginx",
	} {
		if got, err := CanonicalRepository(in); err == nil {
			t.Errorf("CanonicalRepository(%q) = %q, nil; want an error", in, got)
		}
	}
}

func TestCanonicalPattern(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"registry.example.com/team/app-cache", "registry.example.com/team/app-cache"},
		{"registry.example.com/team/*", "registry.example.com/team/*"},
		{"registry.example.com/team/**", "registry.example.com/team/**"},
		{"Registry.Example.com/Team/*-Cache", "registry.example.com/team/*-cache"},
		{"registry.example.com:5000/**/cache", "registry.example.com:5000/**/cache"},
		{"*.example.com/team/*", "*.example.com/team/*"},
		{"registry-*.example.com:5000/x", "registry-*.example.com:5000/x"},
		{"localhost:*/x", "localhost:*/x"},
		{"docker.io/*", "index.docker.io/library/*"},
		{"docker.io/**", "index.docker.io/**"},
		{"docker.io/org/*", "index.docker.io/org/*"},
		{"index.docker.io/org/*", "index.docker.io/org/*"},
		{"org/*", "index.docker.io/org/*"},
		{"*", "index.docker.io/library/*"},
		{"nginx*", "index.docker.io/library/nginx*"},
		{"nginx", "index.docker.io/library/nginx"},
		{"localhost/*", "localhost/*"},
		{"**", "**"},
		{"**/cache", "**/cache"},
	} {
		got, err := canonicalPattern(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("canonicalPattern(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestCanonicalPatternErrors(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"", "empty repository pattern"},
		{"registry.example.com/team/?", "only the wildcards * and ** are supported"},
		{"registry.example.com/team/{a,b}", "only the wildcards * and ** are supported"},
		{"registry.example.com/team/[ab]", "only the wildcards * and ** are supported"},
		{"registry.example.com/team/a**", "** must be a whole path segment"},
		{"registry.example.com//*", "empty path segment"},
		{"registry.example.com/team/*/", "empty path segment"},
		{"*/cache", "a wildcard in the registry part must match host names"},
		{"*/**", "a wildcard in the registry part must match host names"},
		{"registry.example.com/team/*:latest", "cannot match a valid repository name"},
		{"registry.example.com/team/ *", "cannot match a valid repository name"},
		{"registry.example.com/team/*-", "cannot match a valid repository name"},
		{"registry.example.com/app:latest", "invalid repository"},
	} {
		got, err := canonicalPattern(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("canonicalPattern(%q) = %q, %v; want an error containing %q", tc.in, got, err, tc.want)
		}
	}
}

// matchPolicy is a policy whose scopes overlap; each scope's single
// builder names it, so a test can tell which scope won.
const matchPolicy = `version: 1
builders:
  - {name: exact, key: keys/ci-main.pub}
  - {name: team, key: keys/release.pub}
  - {name: everything, key: keys/rotated.pub}
  - {name: other, key: keys/other.pub}
scopes:
  - repositories: ["registry.example.com/**"]
    builders: [everything]
  - repositories: ["registry.example.com/team/*"]
    builders: [team]
  - repositories: ["registry.example.com/team/app-cache"]
    builders: [exact]
  - repositories: ["registry.example.com/team/*-cache", "registry.example.com/*/app-*"]
    builders: [other]
  - repositories: ["registry.example.com/**/deep", "docker.io/org/*"]
    builders: [exact]
    level: audit
  - repositories: ["nginx"]
    builders: [team]
    level: audit
`

func TestMatch(t *testing.T) {
	dir, _ := policyTestDir(t)
	p, errText := parsePolicyInDir(dir, matchPolicy)
	if errText != "" {
		t.Fatalf("Parse = %s", errText)
	}
	for _, tc := range []struct {
		repo string
		// want is the winning pattern, "" for no match.
		want string
		// others are the other matching patterns, the more specific first.
		others []string
	}{
		// An exact pattern beats every glob.
		{"registry.example.com/team/app-cache", "registry.example.com/team/app-cache",
			[]string{"registry.example.com/team/*-cache", "registry.example.com/team/*", "registry.example.com/*/app-*", "registry.example.com/**"}},
		// More literal characters win: "…/team/*-cache" has 32,
		// "…/team/*" and "…/*/app-*" 26 each, "…/**" 21. Between the two
		// with 26 the one with fewer "*" wins.
		{"registry.example.com/team/app-cache2", "registry.example.com/team/*",
			[]string{"registry.example.com/*/app-*", "registry.example.com/**"}},
		{"registry.example.com/team/web-cache", "registry.example.com/team/*-cache",
			[]string{"registry.example.com/team/*", "registry.example.com/**"}},
		{"registry.example.com/team/web", "registry.example.com/team/*",
			[]string{"registry.example.com/**"}},
		// "*" stays within one segment; "**" crosses them.
		{"registry.example.com/team/a/b", "registry.example.com/**", nil},
		{"registry.example.com/x/y/deep", "registry.example.com/**/deep", []string{"registry.example.com/**"}},
		{"registry.example.com/deep", "registry.example.com/**/deep", []string{"registry.example.com/**"}},
		{"REGISTRY.example.com/Team/Web", "registry.example.com/team/*", []string{"registry.example.com/**"}},
		// Docker Hub names are canonicalized on both sides.
		{"nginx", "nginx", nil},
		{"docker.io/library/nginx", "nginx", nil},
		{"index.docker.io/nginx", "nginx", nil},
		{"org/app", "docker.io/org/*", nil},
		{"docker.io/org/app", "docker.io/org/*", nil},
		{"docker.io/org/app/sub", "", nil},
		{"library/redis", "", nil},
		// Other registries and hosts that merely look alike match nothing.
		{"registry.example.com.evil.io/team/app-cache", "", nil},
		{"registry.example.com:5000/team/app-cache", "", nil},
		{"other.example.com/team/app-cache", "", nil},
		// Not a repository name: no scope.
		{"registry.example.com/team/app-cache:latest", "", nil},
		{"", "", nil},
	} {
		s, ok := p.Match(tc.repo)
		scope, pattern, others := p.MatchExplain(tc.repo)
		if tc.want == "" {
			if ok || s != nil || scope != nil || pattern != "" || others != nil {
				t.Errorf("Match(%q) = %+v, %v; MatchExplain = %v, %q, %q; want no match", tc.repo, s, ok, scope, pattern, others)
			}
			continue
		}
		if !ok || s != scope {
			t.Errorf("Match(%q) = %p, %v; MatchExplain scope = %p; want the same scope", tc.repo, s, ok, scope)
		}
		if pattern != tc.want {
			t.Errorf("MatchExplain(%q) pattern = %q; want %q", tc.repo, pattern, tc.want)
		}
		if ok && !slices.Contains(s.Repositories, tc.want) {
			t.Errorf("Match(%q) = scope %v; want the scope of %q", tc.repo, s.Repositories, tc.want)
		}
		if diff := cmp.Diff(tc.others, others); diff != "" {
			t.Errorf("MatchExplain(%q) candidates (-want +got):\n%s", tc.repo, diff)
		}
	}
}

// TestMatchSpecificityOrder checks each rule of the specificity order with
// two patterns that both match, in both file orders.
func TestMatchSpecificityOrder(t *testing.T) {
	for _, tc := range []struct {
		rule       string
		repo       string
		win, loser string
	}{
		{"exact beats glob", "registry.example.com/team/app", "registry.example.com/team/app", "registry.example.com/team/ap*"},
		{"more literal characters", "registry.example.com/team/app", "registry.example.com/team/a*", "registry.example.com/*/app"},
		{"fewer **", "registry.example.com/team/app", "registry.example.com/*/app", "registry.example.com/**/app"},
		{"fewer *", "registry.example.com/team/app", "registry.example.com/t*/app", "registry.example.com/*a*/app"},
		{"any registry loses to a host", "registry.example.com/team/app", "*.example.com/team/app", "**/team/app"},
	} {
		for _, order := range [][2]string{{tc.win, tc.loser}, {tc.loser, tc.win}} {
			p := &Policy{Scopes: []Scope{
				{Repositories: []string{order[0]}},
				{Repositories: []string{order[1]}},
			}}
			_, got, others := p.MatchExplain(tc.repo)
			if got != tc.win || len(others) != 1 || others[0] != tc.loser {
				t.Errorf("%s: MatchExplain(%q) with scopes %q = %q, %q; want %q, [%q]", tc.rule, tc.repo, order, got, others, tc.win, tc.loser)
			}
		}
	}
	// Equally specific: the one written first wins.
	p := &Policy{Scopes: []Scope{
		{Repositories: []string{"registry.example.com/t*/app"}},
		{Repositories: []string{"registry.example.com/team/*", "registry.example.com/tea*/app"}},
	}}
	c, err := p.Candidates("registry.example.com/team/app")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range c {
		got = append(got, x.Pattern)
	}
	want := []string{"registry.example.com/tea*/app", "registry.example.com/t*/app", "registry.example.com/team/*"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Candidates order (-want +got):\n%s", diff)
	}
	if c[1].ScopeIndex != 0 || c[2].ScopeIndex != 1 || c[2].Canonical != "registry.example.com/team/*" {
		t.Errorf("Candidates = %+v; want scope indexes 0 then 1 and canonical patterns", c)
	}
}
