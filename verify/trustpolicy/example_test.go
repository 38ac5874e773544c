package trustpolicy_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// policyYAML is a policy with two builders, their public keys written
// inline: ci may sign the caches of team/ at registry.example.com, and the
// release caches need both ci and release (audited, not enforced).
const policyYAML = `version: 1
builders:
  - name: ci
    key: |
      -----BEGIN PUBLIC KEY-----
      MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAERU6xEFcltG1jPXh8+ON/DQmUYqDg
      958TsHNmW2nhX9wmfXUEw2ItH2D8NLfFmBzvCcQFS3cmGQLj8LOADoWgtw==
      -----END PUBLIC KEY-----
  - name: release
    key: |
      -----BEGIN PUBLIC KEY-----
      MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEoizUA6MNcpfJBQZQv2XpwN/m/Rmc
      30270wyoBJrlbz9zm4IiqSqqqNsFScoSOCg92MFyipUFyCtcI72yCS2d2Q==
      -----END PUBLIC KEY-----
scopes:
  - repositories: ["registry.example.com/team/*"]
    builders: [ci]
    maxAge: 30d
  - repositories: ["registry.example.com/team/release-*"]
    builders: [ci, release]
    threshold: 2
    level: audit
`

func ExampleParse() {
	p, err := trustpolicy.Parse("policy.yaml", []byte(policyYAML))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, b := range p.Builders {
		fmt.Println("builder", b.Name, "keys", len(b.Keys))
	}
	for _, s := range p.Scopes {
		fmt.Println("scope", s.Repositories, "builders", s.Builders, "threshold", s.Threshold, "level", s.Level, "maxAge", s.MaxAge)
	}
	// Output:
	// builder ci keys 1
	// builder release keys 1
	// scope [registry.example.com/team/*] builders [ci] threshold 1 level strict maxAge 720h0m0s
	// scope [registry.example.com/team/release-*] builders [ci release] threshold 2 level audit maxAge 0s
}

// Every problem in a policy file is reported at once, each a *Error that
// names the file, line, column and field.
func ExampleParse_errors() {
	_, err := trustpolicy.Parse("policy.yaml", []byte(`version: 1
builders:
  - name: ci
    key: |
      -----BEGIN PUBLIC KEY-----
      MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAERU6xEFcltG1jPXh8+ON/DQmUYqDg
      958TsHNmW2nhX9wmfXUEw2ItH2D8NLfFmBzvCcQFS3cmGQLj8LOADoWgtw==
      -----END PUBLIC KEY-----
scopes:
  - repositories: ["registry.example.com/team/*"]
    builders: [ci, nobody]
    treshold: 2
    maxAge: a month
revoked: ["sha256:0123"]
`))
	for _, e := range trustpolicy.Errors(err) {
		fmt.Println(e)
	}
	// Output:
	// policy.yaml:11:20: scopes[0].builders[1]: unknown builder "nobody"
	// policy.yaml:12:5: scopes[0].treshold: unknown field (did you mean "threshold"?)
	// policy.yaml:13:5: scopes[0].maxAge: invalid duration "a month": want a number and unit such as 720h or 30d
	// policy.yaml:14:11: revoked[0]: "sha256:0123" is not a key id (sha256: and 64 lowercase hex digits; see `docker trustcache keys id`)
}

// Match returns the scope of a repository: the most specific pattern that
// matches it wins.
func ExamplePolicy_Match() {
	p, err := trustpolicy.Parse("policy.yaml", []byte(policyYAML))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, repo := range []string{
		"registry.example.com/team/app-cache",
		"registry.example.com/team/release-cache",
		"registry.example.com/other/app-cache",
	} {
		s, ok := p.Match(repo)
		if !ok {
			fmt.Println(repo, "=> no scope: not verified")
			continue
		}
		fmt.Println(repo, "=>", s.Repositories[0], s.Level, "threshold", s.Threshold)
	}
	// Output:
	// registry.example.com/team/app-cache => registry.example.com/team/* strict threshold 1
	// registry.example.com/team/release-cache => registry.example.com/team/release-* audit threshold 2
	// registry.example.com/other/app-cache => no scope: not verified
}

// Load reads a policy file; key files are named relative to it.
func ExampleLoad() {
	dir, err := os.MkdirTemp("", "policy")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	pub := "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAERU6xEFcltG1jPXh8+ON/DQmUYqDg\n958TsHNmW2nhX9wmfXUEw2ItH2D8NLfFmBzvCcQFS3cmGQLj8LOADoWgtw==\n-----END PUBLIC KEY-----\n"
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "ci.pub"), []byte(pub), 0o644); err != nil {
		log.Fatal(err)
	}
	policy := "version: 1\nbuilders:\n  - name: ci\n    key: keys/ci.pub\nscopes:\n  - repositories: [\"ghcr.io/acme/*\"]\n    builders: [ci]\n"
	if err := os.WriteFile(filepath.Join(dir, "trustcache.yaml"), []byte(policy), 0o644); err != nil {
		log.Fatal(err)
	}

	p, err := trustpolicy.Load(filepath.Join(dir, "trustcache.yaml"))
	if err != nil {
		log.Fatal(err)
	}
	b, _ := p.Builder("ci")
	fmt.Println("builder", b.Name, "key", b.Keys[0].Ref, "id", b.Keys[0].ID)
	s, ok := p.Match("ghcr.io/acme/app-cache")
	fmt.Println(ok, s.Builders)
	// Output:
	// builder ci key keys/ci.pub id sha256:57f0b04a7b9443f61fddad0c9944b6737a36cef965cd76203df1ea239120163f
	// true [ci]
}
