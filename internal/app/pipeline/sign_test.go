package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
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
	report := &Report{}
	signErr, recordErr := signAndRecord(context.Background(), report,
		func(context.Context) ([]Signed, error) {
			close(signing)
			if err := wait(recording); err != nil {
				return nil, err
			}
			return []Signed{{Reference: "r@sha256:1", Kind: "cache"}}, nil
		},
		func(context.Context) error {
			close(recording)
			if err := wait(signing); err != nil {
				return err
			}
			report.Attested = []Signed{{Reference: "r@sha256:1", Kind: "cache"}}
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
	report := &Report{}
	boom := errors.New("registry refused the signature")
	signErr, recordErr := signAndRecord(context.Background(), report,
		func(context.Context) ([]Signed, error) {
			<-started
			return []Signed{{Reference: "r@sha256:1", Kind: "cache"}}, boom
		},
		func(ctx context.Context) error {
			report.Attested = []Signed{{Reference: "r@sha256:1", Kind: "cache"}}
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
	report := &Report{}
	boom := errors.New("referrers write refused")
	signErr, recordErr := signAndRecord(context.Background(), report,
		func(ctx context.Context) ([]Signed, error) {
			<-failed
			time.Sleep(20 * time.Millisecond)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return []Signed{{Reference: "r@sha256:1", Kind: "cache"}}, nil
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
