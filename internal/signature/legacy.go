package signature

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
	"golang.org/x/sync/errgroup"

	"github.com/docker-trustcache/docker-trustcache/internal/registry"
)

// SignatureAnnotation is the layer annotation that holds the base64
// signature of the layer's payload in cosign's tag scheme.
const SignatureAnnotation = "dev.cosignproject.cosign/signature"

// MaxSignatures bounds how many signatures are read for one digest. A
// signature list longer than this is not read at all: the caller decides
// "untrusted" with ErrTooManySignatures as the reason.
const MaxSignatures = 256

// fetchConcurrency bounds the payload fetches in flight for one digest.
const fetchConcurrency = 8

// ErrTooManySignatures reports a signature list longer than MaxSignatures.
var ErrTooManySignatures = fmt.Errorf("more than %d signatures attached", MaxSignatures)

// Format names where a signature was found.
type Format string

// Signature formats.
const (
	FormatLegacy Format = "legacy" // cosign v2's sha256-<hex>.sig tag
	FormatBundle Format = "bundle" // a sigstore bundle (cosign v3)
)

// Signature is one signature read from the registry: a payload and the
// signature over it, not yet verified.
type Signature struct {
	Format    Format
	Source    string // where it was found, for messages
	Payload   []byte
	Signature []byte
	// Signed is what Signature signs when that is not Payload itself: for
	// FormatBundle, the DSSE PAE of the statement. Verify with SignedBytes.
	Signed []byte
	// Err is set when this entry could not be read because of a registry or
	// network failure; Payload and Signature are then empty.
	Err error
	// Keyless is the certificate material of a keyless (sigstore)
	// signature, nil for a key-signed one (see keyless.go).
	Keyless *Keyless
}

// SigTag returns the tag cosign v2 stores the signatures of digest under.
func SigTag(repo name.Repository, digest v1.Hash) name.Tag {
	return repo.Tag(fmt.Sprintf("%s-%s.sig", digest.Algorithm, digest.Hex))
}

// ReadLegacy returns the signatures attached to digest in repo through
// the .sig tag scheme. No tag means no signatures (nil, nil). A registry
// failure fetching the list is returned as an error; a failure fetching one
// payload is recorded in that Signature's Err. A payload embedded in its
// layer descriptor is used, and its blob not fetched, only when it is the
// content the descriptor names (inlineContent); otherwise the blob is
// fetched as for a descriptor without data.
func ReadLegacy(ctx context.Context, repo name.Repository, digest v1.Hash, opts ...remote.Option) ([]Signature, error) {
	tag := SigTag(repo, digest)
	desc, err := remote.Get(tag, append(slices.Clip(opts), remote.WithContext(ctx))...)
	if registry.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetching signatures %s: %w", tag, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, fmt.Errorf("parsing signature manifest %s: %w", tag, err)
	}
	if len(m.Layers) > MaxSignatures {
		return nil, fmt.Errorf("%s: %w (%d)", tag, ErrTooManySignatures, len(m.Layers))
	}
	sigs := make([]Signature, 0, len(m.Layers))
	blobs := make([]v1.Hash, 0, len(m.Layers))
	for i, l := range m.Layers {
		s := Signature{Format: FormatLegacy, Source: fmt.Sprintf("%s layer %d", tag.TagStr(), i)}
		b64, ok := l.Annotations[SignatureAnnotation]
		if !ok {
			continue // not a signature layer (cosign attaches nothing else here)
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			s.Err = errMalformed{fmt.Errorf("decoding signature annotation: %w", err)}
		}
		if l.Size > MaxPayloadSize || l.Size < 0 {
			s.Err = errMalformed{fmt.Errorf("payload of %d bytes exceeds the %d-byte limit", l.Size, MaxPayloadSize)}
		}
		s.Signature = sig
		s.Keyless = legacyKeyless(l.Annotations)
		if s.Err == nil {
			s.Payload, _ = inlineContent(l)
		}
		sigs = append(sigs, s)
		blobs = append(blobs, l.Digest)
	}
	fetchPayloads(ctx, repo, sigs, blobs, opts)
	return sigs, nil
}

// errMalformed marks a signature entry that is malformed as served: a
// verdict against that entry, not a registry failure.
type errMalformed struct{ error }

func (e errMalformed) Unwrap() error { return e.error }

// IsMalformed reports whether a Signature's Err says the entry itself is
// malformed (as opposed to unreadable because of a registry failure).
func IsMalformed(err error) bool {
	var m errMalformed
	return errors.As(err, &m)
}

// fetchPayloads fills each entry's payload from blob blobs[i], fetching up
// to fetchConcurrency at once. Entries that failed already, or hold their
// payload already (embedded in the manifest), are not fetched.
func fetchPayloads(ctx context.Context, repo name.Repository, sigs []Signature, blobs []v1.Hash, opts []remote.Option) {
	var g errgroup.Group
	g.SetLimit(fetchConcurrency)
	for i := range sigs {
		s := &sigs[i]
		if s.Err != nil || s.Payload != nil {
			continue
		}
		g.Go(func() error {
			s.Payload, s.Err = fetchBlob(ctx, repo, blobs[i], opts)
			return nil
		})
	}
	_ = g.Wait() // each entry's failure is in its Err
}

// fetchBlob reads one payload blob, at most MaxPayloadSize bytes, checking
// its digest.
func fetchBlob(ctx context.Context, repo name.Repository, digest v1.Hash, opts []remote.Option) ([]byte, error) {
	ref := repo.Digest(digest.String())
	l, err := remote.Layer(ref, append(slices.Clip(opts), remote.WithContext(ctx))...)
	if err != nil {
		return nil, fmt.Errorf("fetching payload %s: %w", digest, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("fetching payload %s: %w", digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxPayloadSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading payload %s: %w", digest, err)
	}
	if len(b) > MaxPayloadSize {
		return nil, errMalformed{fmt.Errorf("payload %s exceeds the %d-byte limit", digest, MaxPayloadSize)}
	}
	return b, nil
}

// AppendOptions tune AppendLegacy.
type AppendOptions struct {
	// Same reports whether an existing signature makes the new one
	// redundant (same key, same signed content but for the time). Nil:
	// never.
	Same func(existing Signature) bool
	// Replace, for AppendLegacy, picks signatures already in the .sig tag
	// that the new one replaces (this signer's aged equivalent ones): their
	// layers are left out when the tag is written. Asked after Same found
	// none, once per signature read. Nil: every signature stays.
	Replace func(existing Signature) bool
	// Attempts bounds the write-verify-merge rounds (default 10).
	Attempts int
	// PredicateType is, for AppendBundle, the predicate type of the
	// bundle's statement, written as the referrer's
	// dev.sigstore.bundle.predicateType annotation (default
	// SignPredicateType: an image signature; another type makes the
	// referrer an attestation, which signature readers skip unread).
	PredicateType string
	// Annotations are added to the new .sig layer's annotations by
	// AppendLegacy (a keyless signature's certificate, chain and
	// timestamp: LegacyKeylessAnnotations). The signature annotation is
	// AppendLegacy's own.
	Annotations map[string]string
}

// ErrLostRace reports that concurrent writers kept replacing the signature
// manifest until AppendOptions.Attempts ran out.
var ErrLostRace = errors.New("signature was not kept: concurrent writers replaced the signature tag every time")

// AppendLegacy adds a signature to digest's .sig tag in repo, keeping every
// signature already there (their descriptors as they are). The payload is
// pushed as a blob and, when at most MaxInlineSize bytes, also embedded in
// the new layer descriptor's data, which spares trustcache's readers the
// blob fetch. The tag is read, extended and written; then it
// is read back until the new signature is seen in place several times in a
// row, and merged again if a concurrent writer replaced it. It returns
// added=false when Same found an equivalent signature.
func AppendLegacy(ctx context.Context, repo name.Repository, digest v1.Hash, payload, sig []byte, ao AppendOptions, opts ...remote.Option) (added bool, err error) {
	if ao.Attempts <= 0 {
		ao.Attempts = 10
	}
	tag := SigTag(repo, digest)
	opts = append(slices.Clip(opts), remote.WithContext(ctx))
	layer := withInlineContent(static.NewLayer(payload, ctypes.SimpleSigningMediaType), payload)
	ld, err := layer.Digest()
	if err != nil {
		return false, err
	}
	b64 := base64.StdEncoding.EncodeToString(sig)

	drop := map[string]bool{} // layer digest + " " + base64 signature
	if ao.Same != nil || ao.Replace != nil {
		existing, err := ReadLegacy(ctx, repo, digest, opts...)
		if err != nil && !errors.Is(err, ErrTooManySignatures) {
			return false, err
		}
		for _, s := range existing {
			if s.Err == nil && ao.Same != nil && ao.Same(s) {
				return false, nil
			}
		}
		for _, s := range existing {
			if s.Err == nil && ao.Replace != nil && ao.Replace(s) {
				h, _, _ := v1.SHA256(bytes.NewReader(s.Payload))
				drop[h.String()+" "+base64.StdEncoding.EncodeToString(s.Signature)] = true
			}
		}
	}

	var base v1.Image
	present := func() (bool, error) {
		img, ok, err := readSigImage(tag, ld, b64, opts)
		if ok || err != nil || len(drop) == 0 {
			base = img
			return ok, err
		}
		base, err = withoutLayers(img, drop)
		return false, err
	}
	write := func() error {
		ann := maps.Clone(ao.Annotations)
		if ann == nil {
			ann = map[string]string{}
		}
		ann[SignatureAnnotation] = b64
		img, err := mutate.Append(base, mutate.Addendum{
			Layer:       layer,
			MediaType:   ctypes.SimpleSigningMediaType,
			Annotations: ann,
		})
		if err != nil {
			return fmt.Errorf("adding signature layer: %w", err)
		}
		if err := remote.Write(tag, img, opts...); err != nil {
			return fmt.Errorf("writing signatures %s: %w", tag, err)
		}
		return nil
	}
	if err := writeUntilKept(ctx, ao.Attempts, present, write); err != nil {
		return false, fmt.Errorf("%s: %w", tag, err)
	}
	return true, nil
}

// writeUntilKept writes what present does not yet see, then reads it back
// until it is seen in place several times in a row, writing again (at most
// attempts times in all) whenever a concurrent read-modify-write replaced
// it. The registry API has no compare-and-swap; the repeated sightings,
// spaced wider than a writer's read-to-write window, are what make
// concurrent signers all stay. That window is measured, not assumed: the
// sightings are spaced by at least twice this signer's own last
// read-and-write, so that a slow registry (or a loaded host, where every
// concurrent signer is as slow) widens them as it widens the window.
func writeUntilKept(ctx context.Context, attempts int, present func() (bool, error), write func() error) error {
	const confirmations = 3
	seen := 0
	gap := 50 * time.Millisecond // the least spacing of two sightings
	for attempt := 0; attempt < attempts; {
		start := time.Now()
		ok, err := present()
		if err != nil {
			return err
		}
		if ok {
			seen++
			if seen >= confirmations {
				return nil
			}
			sleep(ctx, gap, 3*gap)
			continue
		}
		seen = 0
		attempt++
		if err := write(); err != nil {
			return err
		}
		if window := 2 * time.Since(start); window > gap {
			gap = min(window, maxSightingGap)
		}
		sleep(ctx, 10*time.Millisecond, 100*time.Millisecond)
	}
	return fmt.Errorf("%w (after %d attempts)", ErrLostRace, attempts)
}

// maxSightingGap bounds the spacing of two sightings, however slow the
// registry was.
const maxSightingGap = 5 * time.Second

// readSigImage returns the current signature image at tag (an empty one if
// the tag does not exist) and whether it already holds layer ld with
// signature b64. The payload alone is not enough: it is predictable (a
// keyless signer's, or anyone's within the same second), and a layer with
// it and another signature is not this signer's.
func readSigImage(tag name.Tag, ld v1.Hash, b64 string, opts []remote.Option) (v1.Image, bool, error) {
	img, err := remote.Image(tag, opts...)
	if registry.IsNotFound(err) {
		return emptySignatures(), false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading signatures %s: %w", tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, false, fmt.Errorf("reading signatures %s: %w", tag, err)
	}
	if len(m.Layers) >= MaxSignatures {
		return nil, false, fmt.Errorf("%s: %w", tag, ErrTooManySignatures)
	}
	for _, l := range m.Layers {
		if l.Digest == ld && l.Annotations[SignatureAnnotation] == b64 {
			return img, true, nil
		}
	}
	return img, false, nil
}

// withoutLayers returns the signature image img without the layers in drop
// (keyed by layer digest + " " + base64 signature), every other layer kept
// in order with its descriptor (annotations, inline data) and its config
// diff_id, on an empty signature image as cosign starts one. When img has
// none of them it is returned as it is.
func withoutLayers(img v1.Image, drop map[string]bool) (v1.Image, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(layers) != len(m.Layers) {
		return nil, fmt.Errorf("signature image has %d layers and %d descriptors", len(layers), len(m.Layers))
	}
	var adds []mutate.Addendum
	for i, d := range m.Layers {
		if drop[d.Digest.String()+" "+d.Annotations[SignatureAnnotation]] {
			continue
		}
		l := layers[i]
		if content, ok := inlineContent(d); ok {
			l = withInlineContent(l, content)
		}
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: d.MediaType, Annotations: d.Annotations, URLs: d.URLs})
	}
	if len(adds) == len(m.Layers) {
		return img, nil
	}
	return mutate.Append(emptySignatures(), adds...)
}

// emptySignatures is the empty OCI image cosign starts a signature list from.
func emptySignatures() v1.Image {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	return mutate.ConfigMediaType(img, types.OCIConfigJSON)
}

// sleep waits a random time in [min, max) or until ctx is done.
func sleep(ctx context.Context, min, max time.Duration) {
	d := min + rand.N(max-min)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
