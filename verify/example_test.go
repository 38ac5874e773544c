package verify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/keys"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// Verify a cache tag against a policy: the tag's digest was signed by the
// builder "ci" with the key the policy names for it.
func ExampleVerifier_Verify() {
	reg := newExampleRegistry()
	defer reg.Close()

	p, err := trustpolicy.Parse("policy.yaml", []byte(reg.policy))
	if err != nil {
		log.Fatal(err)
	}
	v := verify.New(p)
	for _, ref := range []string{reg.host + "/team/app-cache:main", reg.host + "/team/app-cache:unsigned"} {
		res, err := v.Verify(context.Background(), ref)
		if err != nil { // only a reference that does not parse
			log.Fatal(err)
		}
		var signers []string
		for _, s := range res.Signers {
			signers = append(signers, s.Builder)
		}
		fmt.Printf("%s: %s, signers %v, enforced %v\n", strings.TrimPrefix(ref, reg.host+"/"), res.Verdict, signers, res.Enforced())
		if !res.Trusted {
			fmt.Println("  because:", res.Reasons[0])
		}
	}
	// Output:
	// team/app-cache:main: trusted, signers [ci], enforced false
	// team/app-cache:unsigned: untrusted, signers [], enforced true
	//   because: no signatures found
}

// With a ledger, a digest verified once is trusted again without fetching
// its signatures, until its entry expires or the policy changes.
func ExampleWithLedger() {
	reg := newExampleRegistry()
	defer reg.Close()
	dir, err := os.MkdirTemp("", "ledger")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	p, err := trustpolicy.Parse("policy.yaml", []byte(reg.policy))
	if err != nil {
		log.Fatal(err)
	}
	l, err := verify.OpenLedger(filepath.Join(dir, "ledger.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	v := verify.New(p, verify.WithLedger(l))
	for range 2 {
		res, _ := v.Verify(context.Background(), reg.host+"/team/app-cache:main")
		fmt.Println(res.Verdict, "from ledger:", res.FromLedger)
	}
	entries, err := l.Entries(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		fmt.Println("ledger:", strings.TrimPrefix(e.Repository, reg.host+"/"), e.Signers[0].Builder)
	}
	// Output:
	// trusted from ledger: false
	// trusted from ledger: true
	// ledger: team/app-cache ci
}

// exampleRegistry is an in-memory registry (go-containerregistry's
// pkg/registry) holding team/app-cache:main, signed by builder ci, and
// team/app-cache:unsigned, with a policy that allows ci for team/.
type exampleRegistry struct {
	*httptest.Server
	host   string // 127.0.0.1:PORT
	policy string
}

func newExampleRegistry() *exampleRegistry {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	host := strings.TrimPrefix(srv.URL, "http://")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	repo, err := name.NewRepository(host + "/team/app-cache")
	if err != nil {
		log.Fatal(err)
	}
	for _, tag := range []string{"main", "unsigned"} {
		img, err := random.Image(256, 1)
		if err != nil {
			log.Fatal(err)
		}
		if err := remote.Write(repo.Tag(tag), img); err != nil {
			log.Fatal(err)
		}
		if tag != "main" {
			continue
		}
		d, err := img.Digest()
		if err != nil {
			log.Fatal(err)
		}
		s := signature.Signer{Key: key, Builder: "ci"}
		if _, err := s.Sign(context.Background(), repo, d, nil); err != nil {
			log.Fatal(err)
		}
	}
	pub, err := keys.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		log.Fatal(err)
	}
	policy := fmt.Sprintf(`version: 1
builders:
  - name: ci
    key: |
      %s
scopes:
  - repositories: ["%s/team/*"]
    builders: [ci]
`, strings.ReplaceAll(strings.TrimSpace(string(pub)), "\n", "\n      "), host)
	return &exampleRegistry{Server: srv, host: host, policy: policy}
}

// Explain verifies as Verify does and records every rule applied to every
// signature found.
func ExampleVerifier_Explain() {
	reg := newExampleRegistry()
	defer reg.Close()

	p, err := trustpolicy.Parse("policy.yaml", []byte(reg.policy))
	if err != nil {
		log.Fatal(err)
	}
	res, err := verify.New(p).Explain(context.Background(), reg.host+"/team/app-cache:main")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Verdict, "scope", strings.TrimPrefix(res.Scope, reg.host+"/"))
	for _, sc := range res.Checks {
		fmt.Println("signature", sc.Format)
		for _, c := range sc.Checks {
			fmt.Printf("  %s: %v\n", c.Rule, c.OK)
		}
	}
	// Output:
	// trusted scope team/*
	// signature legacy
	//   key: true
	//   revoked: true
	//   builder: true
	//   payload: true
	//   digest: true
	//   repository: true
	//   age: true
	//   annotations: true
}
