package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/provenance"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// TestSignAndRecordOverlap: the signing and the provenance record run at
// the same time. Each half waits until the other has started; run in turn
// they would never both start.
func TestSignAndRecordOverlap(t *testing.T) {
	t.Parallel()
	signing, recording := make(chan struct{}), make(chan struct{})
	wait := func(ch chan struct{}) error {
		select {
		case <-ch:
			return nil
		case <-time.After(5 * time.Second):
			return errors.New("the other half never started: run in turn")
		}
	}
	report := &trustReport{}
	signErr, recordErr := signAndRecord(context.Background(), report,
		func(context.Context) ([]signedReport, error) {
			close(signing)
			if err := wait(recording); err != nil {
				return nil, err
			}
			return []signedReport{{Reference: "r@sha256:1", Kind: "cache"}}, nil
		},
		func(context.Context) error {
			close(recording)
			if err := wait(signing); err != nil {
				return err
			}
			report.Attested = []signedReport{{Reference: "r@sha256:1", Kind: "cache"}}
			return nil
		})
	if signErr != nil || recordErr != nil {
		t.Fatalf("sign %v, record %v", signErr, recordErr)
	}
	if len(report.Signed) != 1 || len(report.Attested) != 1 {
		t.Errorf("report signed %v, attested %v", report.Signed, report.Attested)
	}
}

// TestSignAndRecordSigningFailureStopsRecord: a signing failure cancels
// the record still being written, and both errors are returned, the
// record's saying it was stopped and how far it got.
func TestSignAndRecordSigningFailureStopsRecord(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	report := &trustReport{}
	boom := errors.New("registry refused the signature")
	signErr, recordErr := signAndRecord(context.Background(), report,
		func(context.Context) ([]signedReport, error) {
			<-started
			return []signedReport{{Reference: "r@sha256:1", Kind: "cache"}}, boom
		},
		func(ctx context.Context) error {
			report.Attested = []signedReport{{Reference: "r@sha256:1", Kind: "cache"}}
			close(started)
			select {
			case <-ctx.Done():
				return fmt.Errorf("attaching the provenance record to r@sha256:2: %w", ctx.Err())
			case <-time.After(5 * time.Second):
				return nil
			}
		})
	if !errors.Is(signErr, boom) {
		t.Errorf("sign error %v; want %v", signErr, boom)
	}
	if !errors.Is(recordErr, context.Canceled) || !strings.Contains(fmt.Sprint(recordErr), "stopped when signing failed, attached to 1 subject(s) by then") {
		t.Errorf("record error %v; want it stopped by the signing failure, saying so", recordErr)
	}
	if len(report.Signed) != 1 {
		t.Errorf("report.Signed %v; want what was signed before the failure", report.Signed)
	}
	err := exportsFailed("build", signErr, recordErr)
	if !errors.Is(err, boom) || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "signing its exports failed") || !strings.Contains(err.Error(), "attaching its provenance record failed") {
		t.Errorf("exportsFailed = %v; want both failures", err)
	}
}

// TestSignAndRecordRecordFailureKeepsSigning: a record failure does not
// stop the signing: the exports are signed and both outcomes reported.
func TestSignAndRecordRecordFailureKeepsSigning(t *testing.T) {
	t.Parallel()
	failed := make(chan struct{})
	report := &trustReport{}
	boom := errors.New("referrers write refused")
	signErr, recordErr := signAndRecord(context.Background(), report,
		func(ctx context.Context) ([]signedReport, error) {
			<-failed
			time.Sleep(20 * time.Millisecond)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return []signedReport{{Reference: "r@sha256:1", Kind: "cache"}}, nil
		},
		func(context.Context) error {
			defer close(failed)
			return boom
		})
	if signErr != nil || !errors.Is(recordErr, boom) || strings.Contains(recordErr.Error(), "stopped") {
		t.Errorf("sign %v, record %v; want the signing done and the record's own error", signErr, recordErr)
	}
	if len(report.Signed) != 1 {
		t.Errorf("report.Signed %v", report.Signed)
	}
	if err := exportsFailed("bake", signErr, recordErr); err == nil || !strings.Contains(err.Error(), "the bake succeeded, but attaching its provenance record failed") || strings.Contains(err.Error(), "signing") {
		t.Errorf("exportsFailed = %v", err)
	}
	if err := exportsFailed("build", nil, nil); err != nil {
		t.Errorf("exportsFailed(nil, nil) = %v", err)
	}
}

// TestProvenanceSigningFailureReported: a real build --sign whose image
// signature cannot be written (the build reports an image digest the
// registry does not have) fails, naming the signing failure; the report
// lists as signed only what carries a signature, and as attested only
// subjects that carry the record — nothing half-written is reported done.
func TestProvenanceSigningFailureReported(t *testing.T) {
	dir := isolate(t)
	host := newCountingRegistry(t, false).host
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "")
	cache := pushRandom(t, host+"/team/cache:next")
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	missing, _ := img.Digest() // never pushed
	fakeBuildMetadata(t, dir, `{"cache.manifest":{"digest":"`+cache.String()+`"},"containerimage.digest":"`+missing.String()+`","image.name":"`+host+`/team/app:1"}`)
	res := run(t, "build", "--no-ledger", "--sign", "--key", "ci.key", "--signature-format", "bundle", "--trust-report", "report.json",
		"--cache-to", "type=registry,ref="+host+"/team/cache:next", "--push", "-t", host+"/team/app:1", ".")
	if res.code == 0 || !strings.Contains(res.stderr, "signing its exports failed") || !strings.Contains(res.stderr, missing.String()) {
		t.Fatalf("build --sign = %d %s; want the signing failure naming %s", res.code, res.stderr, missing)
	}
	rep := readTrustReport(t, "report.json")
	cacheRepo, _ := name.NewRepository(host + "/team/cache")
	want := []signedReport{{cacheRepo.Name() + "@" + cache.String(), "cache"}}
	if diff := cmp.Diff(want, rep.Signed); diff != "" {
		t.Errorf("signed (-want +got):\n%s", diff)
	}
	if res := run(t, "verify", "--no-ledger", "--format", "json", cacheRepo.Name()+"@"+cache.String()); res.code != 0 {
		t.Errorf("verify of the signed cache = %d %s %s", res.code, res.stdout, res.stderr)
	}
	// Whatever the report says was attested carries the record; the
	// image, which does not exist, is not among them.
	ci, _ := keys.LoadPublicKey("ci.pub", dir)
	for _, a := range rep.Attested {
		if a.Kind != "cache" {
			t.Errorf("attested %v; the image was never written", a)
			continue
		}
		if recs := provenanceReferrers(t, cacheRepo, cache, ci); len(recs) != 1 {
			t.Errorf("report says the record is on %s; the registry has %d", a.Reference, len(recs))
		}
	}
	if rep.Provenance == nil {
		t.Errorf("no provenance record in the report")
	}
}

// BenchmarkSignAndRecord: what a signing build of a new commit does after
// the build — a new signature (.sig tag) and a new provenance record
// (referrers tag) on its new cache digest, each with its confirmation wait
// — on an in-memory registry without the referrers API: the signature
// alone, the two in turn (as before signAndRecord), and the two at once.
// Each iteration pushes a new subject first (~1 ms), so that no variant
// reads what an earlier one attached.
func BenchmarkSignAndRecord(b *testing.B) {
	reg := testreg.New(b)
	privPEM, _, err := keys.GenerateKeyPair([]byte("pw"))
	if err != nil {
		b.Fatal(err)
	}
	key, _ := keys.LoadPrivateKey(privPEM, []byte("pw"))
	repo := reg.Repo(b, "team/cache")
	signer := signature.Signer{Key: key, Builder: "ci"}
	newSubject := func(b *testing.B) (sign func(context.Context) ([]signedReport, error), record func(context.Context) error) {
		img, err := random.Image(128, 1)
		if err != nil {
			b.Fatal(err)
		}
		d, _ := img.Digest()
		if err := remote.Write(repo.Digest(d.String()), img); err != nil {
			b.Fatal(err)
		}
		targets := []exportTarget{{repo, d, "cache"}}
		sign = func(ctx context.Context) ([]signedReport, error) {
			_, _, err := signer.Attach(ctx, signature.FormatLegacy, repo, d, nil)
			return nil, err
		}
		record = func(ctx context.Context) error {
			_, err := attachProvenance(ctx, signer, provenanceRecord(&trustReport{}, nil, "bench", nil, targets, time.Now()), targets)
			return err
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
			if serr, rerr := signAndRecord(context.Background(), &trustReport{}, sign, record); serr != nil || rerr != nil {
				b.Fatal(serr, rerr)
			}
		}
	})
}

// TestSameRecord: a record the same but for builtAt is the same; another
// source commit, or data that is no record, is not.
func TestSameRecord(t *testing.T) {
	t.Parallel()
	st := provenanceRecord(&trustReport{}, nil, "test", map[string]string{"commit": "aaa"}, nil, time.Now())
	same := sameRecord(st)
	later := st
	later.Predicate.BuiltAt = "2099-01-01T00:00:00Z"
	other := st
	other.Predicate.Source.Commit = "another"
	for _, tc := range []struct {
		name string
		s    provenance.Statement
		want bool
	}{{"later", later, true}, {"another commit", other, false}} {
		data, err := tc.s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if got := same(data); got != tc.want {
			t.Errorf("sameRecord(%s) = %v; want %v", tc.name, got, tc.want)
		}
	}
	if same([]byte(`{"not":"a record"}`)) {
		t.Errorf("sameRecord(not a record) = true")
	}
}
