package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/decision"
)

// BenchmarkSignAndRecord: what a signing build of a new commit does after
// the build — a new signature (.sig tag) and a new provenance record
// (referrers tag) on its new cache digest, each with its confirmation wait
// — on an in-memory registry without the referrers API: the signature
// alone, the two in turn, and the two at once (signAndRecord). Each
// iteration pushes a new subject first (~1 ms), so that no variant reads
// what an earlier one attached.
func BenchmarkSignAndRecord(b *testing.B) {
	reg := testreg.New(b)
	repo := reg.Repo(b, "team/cache")
	rs := &registrySigner{s: signature.Signer{Key: testreg.Key(b), Builder: "ci"}}
	r := &run{Pipeline: &Pipeline{o: Options{Version: "bench", Getenv: envOf(nil), Now: time.Now}}, report: &Report{}}
	newSubject := func(b *testing.B) (sign func(context.Context) ([]Signed, error), record func(context.Context) error) {
		img, err := random.Image(128, 1)
		if err != nil {
			b.Fatal(err)
		}
		d, _ := img.Digest()
		if err := remote.Write(repo.Digest(d.String()), img); err != nil {
			b.Fatal(err)
		}
		e := Export{repo, d, "cache"}
		sign = func(ctx context.Context) ([]Signed, error) {
			return nil, rs.Sign(ctx, e, []string{""}, nil)
		}
		record = func(ctx context.Context) error {
			return r.record(ctx, rs, []targetExports{{exports: []exported{{e, []string{""}}}}}, nil)
		}
		return sign, record
	}
	b.Run("sign-only", func(b *testing.B) {
		for b.Loop() {
			sign, _ := newSubject(b)
			if _, err := sign(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("in-turn", func(b *testing.B) {
		for b.Loop() {
			sign, record := newSubject(b)
			if _, err := sign(context.Background()); err != nil {
				b.Fatal(err)
			}
			if err := record(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("at-once", func(b *testing.B) {
		for b.Loop() {
			sign, record := newSubject(b)
			if serr, rerr := signAndRecord(context.Background(), &Report{}, sign, record); serr != nil || rerr != nil {
				b.Fatal(serr, rerr)
			}
		}
	})
}

// BenchmarkProvenanceRecord: building the record of a build that imported
// three verified caches (and signing it), against one verification of a
// signed cache on an in-memory registry.
func BenchmarkProvenanceRecord(b *testing.B) {
	f := newFixture(b, "")
	v := verify.New(f.policy)
	res, err := v.Verify(context.Background(), f.good)
	if err != nil || !res.Trusted {
		b.Fatalf("Verify = %+v, %v", res, err)
	}
	r := &run{Pipeline: &Pipeline{o: Options{Version: "bench", Getenv: envOf(nil), Now: time.Now}}, policy: f.policy, report: &Report{}}
	for i := range 3 {
		r.report.Caches = append(r.report.Caches, Cache{Source: fmt.Sprintf("%s-%d", f.good, i), Type: "registry", Action: decision.Used, Guarantee: GuaranteeVerifiedBytes, Result: res})
	}
	exports := []Export{{f.reg.Repo(b, "team/cache"), f.goodD, "cache"}}
	b.Run("record", func(b *testing.B) {
		for b.Loop() {
			st := r.provenanceRecord(exports, time.Now())
			if _, err := st.Marshal(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("record+sign", func(b *testing.B) {
		for b.Loop() {
			st := r.provenanceRecord(exports, time.Now())
			data, _ := st.Marshal()
			if _, err := signature.NewBundle(data, f.ci.Key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.Verify(context.Background(), f.good); err != nil {
				b.Fatal(err)
			}
		}
	})
}
