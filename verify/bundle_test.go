package verify

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// signBundle attaches a sigstore bundle over digest, as cosign v3 writes
// one (annotations as given: no identity unless the caller adds it).
func signBundle(t *testing.T, k testKey, repo name.Repository, subject, statementDigest v1.Hash, ann map[string]string) {
	t.Helper()
	st, err := signature.NewStatement(statementDigest, ann)
	if err != nil {
		t.Fatal(err)
	}
	b, err := signature.NewBundle(st, k.priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signature.AppendBundle(context.Background(), repo, subject, b, signature.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyBundles(t *testing.T) {
	created := now.Add(-time.Hour).Format(time.RFC3339)
	tests := []struct {
		name   string
		scope  string
		setup  func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash)
		want   Verdict
		reason string
	}{{
		name: "bundle written by trustcache",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			s := signature.Signer{Key: f.ci.priv, Builder: "ci", Now: func() time.Time { return now }}
			if _, err := s.SignBundle(context.Background(), repo, d, nil); err != nil {
				t.Fatal(err)
			}
		},
		want: VerdictTrusted,
	}, {
		name: "bundle that names another repository",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			signBundle(t, f.ci, repo, d, d, map[string]string{"identity": f.reg.Host + "/team/other", "created": created})
		},
		want: VerdictUntrusted, reason: "copied from another repository",
	}, {
		name: "bundle over another digest attached here",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			other := testreg.PushRandom(t, repo.Tag("other"), 256, 1)
			signBundle(t, f.ci, repo, d, other, map[string]string{"identity": repo.Name(), "created": created})
		},
		want: VerdictUntrusted, reason: "copied from another manifest",
	}, {
		name: "bundle without a repository (as cosign writes)",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			signBundle(t, f.ci, repo, d, d, nil)
		},
		want: VerdictUntrusted, reason: "acceptUnboundBundles",
	}, {
		name:  "bundle without a repository, acceptUnboundBundles",
		scope: "    acceptUnboundBundles: true",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			signBundle(t, f.ci, repo, d, d, nil)
		},
		want: VerdictTrusted,
	}, {
		name: "bundle by a key not in the policy",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			signBundle(t, f.rand, repo, d, d, map[string]string{"identity": repo.Name()})
		},
		want: VerdictUntrusted, reason: "not signed by any key in the policy",
	}, {
		name:  "threshold 2 across formats",
		scope: "    threshold: 2",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now, nil)
			s := signature.Signer{Key: f.release.priv, Builder: "release", Now: func() time.Time { return now }}
			if _, err := s.SignBundle(context.Background(), repo, d, nil); err != nil {
				t.Fatal(err)
			}
		},
		want: VerdictTrusted,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.policy(t, tc.scope, "")
			repo := f.reg.Repo(t, "team/app-cache")
			d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
			tc.setup(t, f, repo, d)
			wantVerdict(t, f.verify(t, p, repo.Tag("main").String()), tc.want, tc.reason)
		})
	}
}
