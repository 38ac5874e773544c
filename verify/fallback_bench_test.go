package verify

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// BenchmarkFallback: what the fallback costs in registry requests, for a
// fresh host (new verifier, empty ledger: the cold case) and a host that
// verified the same attacked tag before (its ledger: the warm case), per
// attack of issue 23 against a tag whose head record names d2 (d1 before
// it). "unattacked" is the cost without an attack, for comparison.
func BenchmarkFallback(b *testing.B) {
	for _, c := range []struct {
		name   string
		attack func(b *testing.B, e *fbEnv)
	}{
		{"unattacked", func(*testing.B, *fbEnv) {}},
		{"forged", func(b *testing.B, e *fbEnv) {
			d := testreg.PushRandom(b, e.main, 256, 1)
			sign(b, e.f.rand, "ci", e.repo, d, now, nil)
		}},
		{"deleted", func(b *testing.B, e *fbEnv) {
			if err := remote.Delete(e.main); err != nil {
				b.Fatal(err)
			}
		}},
		{"rolledBack", func(b *testing.B, e *fbEnv) {
			img, err := remote.Image(e.repo.Digest(e.d1.String()))
			if err != nil {
				b.Fatal(err)
			}
			if err := remote.Write(e.main, img); err != nil {
				b.Fatal(err)
			}
		}},
		{"junkSignatures", func(b *testing.B, e *fbEnv) { addJunkSignatures(b, e.repo, e.d2, 300) }},
	} {
		for _, warm := range []bool{false, true} {
			name := c.name + "/cold"
			if warm {
				name = c.name + "/warm"
			}
			b.Run(name, func(b *testing.B) {
				e := newFallbackEnvB(b)
				c.attack(b, e)
				var l *Ledger
				if warm {
					l = newLedger(b)
				}
				verify := func() *Result {
					opts := []Option{WithClock(func() time.Time { return now })}
					if warm {
						opts = append(opts, WithLedger(l))
					} else {
						opts = append(opts, WithLedger(newLedger(b)))
					}
					res, _ := New(e.p, opts...).Verify(context.Background(), e.main.String())
					if !res.Trusted {
						b.Fatalf("%s: %s (%s)", name, res.Verdict, res.Reason())
					}
					return res
				}
				verify()
				e.f.reg.Reset()
				n := 0
				for b.Loop() {
					verify()
					n++
				}
				b.ReportMetric(float64(served(e.f.reg))/float64(n), "requests/op")
			})
		}
	}
}

// newFallbackEnvB is newFallbackEnv for a benchmark.
func newFallbackEnvB(b *testing.B) *fbEnv {
	b.Helper()
	f := newFixture(b)
	pol := writePolicy(b, f.dir, "version: 1\nbuilders:\n  - name: ci\n    keys: [ci.pub]\nscopes:\n  - repositories: [\""+f.reg.Host+"/team/*\"]\n    builders: [ci]\n")
	e := &fbEnv{f: f, p: pol, repo: f.reg.Repo(b, "team/app-cache")}
	e.main = e.repo.Tag("main")
	for i, at := range []time.Time{fbT1, fbT2} {
		d := testreg.PushRandom(b, e.main, 256, 1)
		sign(b, f.ci, "ci", e.repo, d, at, map[string]string{signature.AnnotationTag: "main"})
		if _, _, err := signature.WriteHead(context.Background(), f.ci.priv, "ci", e.repo, "main", d, signature.HeadOptions{Now: func() time.Time { return at }}); err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			e.d1 = d
		} else {
			e.d2 = d
		}
	}
	return e
}
