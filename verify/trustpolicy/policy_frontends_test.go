package trustpolicy

import (
	"slices"
	"strings"
	"testing"
)

const (
	feDigest  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	feDigest2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func TestParsePolicyFrontends(t *testing.T) {
	dir, _ := policyTestDir(t)
	text := policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n" +
		"frontends:\n  - docker/dockerfile@" + feDigest + "\n  - registry.example.com:5000/team/fe:v1@" + feDigest2 + "\n  - docker.io/docker/dockerfile@" + feDigest + "\n"
	p, errText := parsePolicyInDir(dir, text)
	if errText != "" {
		t.Fatalf("Parse = %s; want no error", errText)
	}
	want := []string{"index.docker.io/docker/dockerfile@" + feDigest, "registry.example.com:5000/team/fe@" + feDigest2}
	if !slices.Equal(p.Frontends, want) {
		t.Errorf("Frontends = %q; want %q (canonical, tag dropped, once each)", p.Frontends, want)
	}
	for ref, allowed := range map[string]bool{
		"docker/dockerfile@" + feDigest:                       true,
		"docker.io/docker/dockerfile@" + feDigest:             true,
		"index.docker.io/docker/dockerfile:1@" + feDigest:     true,
		"registry.example.com:5000/team/fe@" + feDigest2:      true,
		"docker/dockerfile@" + feDigest2:                      false, // another digest
		"docker/dockerfile:1":                                 false, // a tag moves
		"docker/dockerfile":                                   false,
		"evil.example.com/docker/dockerfile@" + feDigest:      false, // another registry
		"registry.example.com:5000/team/fe-evil@" + feDigest2: false,
		"":                             false,
		"dockerfile.v0":                false,
		"docker/dockerfile@sha256:abc": false,
	} {
		if got := p.AllowsFrontend(ref); got != allowed {
			t.Errorf("AllowsFrontend(%q) = %v; want %v", ref, got, allowed)
		}
	}

	// Without the field: no frontend image is allowed.
	p, errText = parsePolicyInDir(dir, policyHeader+"  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n")
	if errText != "" {
		t.Fatal(errText)
	}
	if p.AllowsFrontend("docker/dockerfile@" + feDigest) {
		t.Errorf("a policy without frontends allows one")
	}
}

func TestParsePolicyFrontendsErrors(t *testing.T) {
	dir, _ := policyTestDir(t)
	head := policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n"
	for _, tc := range []struct{ text, want string }{
		{"frontends:\n  - docker/dockerfile:1\n", `policy.yaml:11:5: frontends[0]: "docker/dockerfile:1" is not pinned by digest: write REPOSITORY@sha256:<64 hex digits> (a tag can be moved to another image)`},
		{"frontends:\n  - docker/dockerfile@sha256:abc\n", `policy.yaml:11:5: frontends[0]: "docker/dockerfile@sha256:abc" is not pinned by digest`},
		{"frontends:\n  - Not A Ref@" + feDigest + "\n", `policy.yaml:11:5: frontends[0]: "Not A Ref@` + feDigest + `" is not an image reference`},
		{"frontends: docker/dockerfile@" + feDigest + "\n", `policy.yaml:10:1: frontends: must be a list`},
		{"frontends:\n  - [x]\n", `policy.yaml:11:5: frontends[0]: must be a string`},
	} {
		p, got := parsePolicyInDir(dir, head+tc.text)
		if p != nil || !strings.Contains(got, tc.want) {
			t.Errorf("Parse(frontends %q) = %v, %q; want an error containing %q", tc.text, p != nil, got, tc.want)
		}
	}
}
