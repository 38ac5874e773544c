package signature

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// How cosign v3 attaches a bundle to an image (pkg/oci/remote/write.go,
// WriteAttestationNewBundleFormat): an OCI 1.1 image manifest, artifactType
// BundleMediaType, config the empty descriptor, one layer (the bundle
// JSON), subject the signed manifest, found through the referrers API or,
// where the registry has none, the referrers tag "sha256-<hex>" (an OCI
// index go-containerregistry maintains on write and reads on list).
const (
	// EmptyMediaType is the media type of the OCI empty descriptor, the
	// config of an artifact manifest; its blob is "{}".
	EmptyMediaType = "application/vnd.oci.empty.v1+json"

	// Manifest annotations cosign sets on a bundle referrer. They are not
	// signed: they only let a reader skip attestations unread.
	annotationBundleContent       = "dev.sigstore.bundle.content"
	annotationBundlePredicateType = "dev.sigstore.bundle.predicateType"
	annotationImageCreated        = "org.opencontainers.image.created"

	// bundleLayerPrefix starts the media type of every bundle version's
	// layer, as cosign checks it.
	bundleLayerPrefix = "application/vnd.dev.sigstore.bundle"
)

// MaxReferrerManifestSize bounds one referrer manifest. cosign's are about
// 700 bytes.
const MaxReferrerManifestSize = 64 << 10

// ReadBundles returns the sigstore bundle signatures attached to digest in
// repo as OCI referrers: through the referrers API where the registry
// serves it, else through the referrers tag. Each entry has Format
// FormatBundle, the statement as Payload, the DSSE signature, and the PAE
// it signs as Signed (see Signature.SignedBytes); the statement is not
// parsed (see ParseStatement). A bundle embedded in its layer descriptor is
// used, and its blob not fetched, only when it is the content the
// descriptor names (inlineContent).
//
// Bounds: referrers that are not OCI image manifests (nested indexes) are
// not followed; referrers of another artifactType, and those marked as
// attestations of another predicate type, are skipped unread (an empty
// artifactType, or the empty config type that some registries — among them
// go-containerregistry's — report instead, still counts as a candidate);
// more than MaxSignatures candidates is ErrTooManySignatures, read no
// further; a manifest over MaxReferrerManifestSize or a bundle over
// MaxBundleSize is refused unread (a malformed entry). The hard bound on
// every response body, the referrers list included, is the transport's:
// pass registry.Options.
//
// No referrers means no signatures (nil, nil). A registry failure listing
// the referrers is an error; one reading a single referrer is recorded in
// its entry's Err, and a referrer that claims to be a bundle but is not a
// valid one gets an Err for which IsMalformed is true.
func ReadBundles(ctx context.Context, repo name.Repository, digest v1.Hash, opts ...remote.Option) ([]Signature, error) {
	opts = append(slices.Clip(opts), remote.WithContext(ctx))
	subject, im, err := listReferrers(repo, digest, opts)
	if err != nil {
		return nil, err
	}
	var cands []v1.Descriptor
	for _, d := range im.Manifests {
		if bundleCandidate(d) {
			cands = append(cands, d)
		}
	}
	if len(cands) > MaxSignatures {
		return nil, fmt.Errorf("referrers of %s: %w (%d bundle referrers)", subject, ErrTooManySignatures, len(cands))
	}

	return readBundles(ctx, repo, cands, opts, SignPredicateType), nil
}

// listReferrers lists the referrers of repo@digest (opts carry the
// context).
func listReferrers(repo name.Repository, digest v1.Hash, opts []remote.Option) (name.Digest, *v1.IndexManifest, error) {
	subject := repo.Digest(digest.String())
	idx, err := remote.Referrers(subject, opts...)
	if err != nil {
		return subject, nil, fmt.Errorf("listing referrers of %s: %w", subject, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return subject, nil, fmt.Errorf("listing referrers of %s: %w", subject, err)
	}
	return subject, im, nil
}

// readBundles reads the bundles of cands, up to fetchConcurrency at once,
// and keeps those that are bundles of predicateType (nil when none is).
func readBundles(ctx context.Context, repo name.Repository, cands []v1.Descriptor, opts []remote.Option, predicateType string) []Signature {
	sigs := make([]Signature, len(cands))
	isBundle := make([]bool, len(cands))
	var g errgroup.Group
	g.SetLimit(fetchConcurrency)
	for i, d := range cands {
		g.Go(func() error {
			sigs[i], isBundle[i] = readBundle(ctx, repo, d, opts, predicateType)
			return nil
		})
	}
	_ = g.Wait() // readBundle records a failure in the Signature itself

	out := sigs[:0]
	for i, s := range sigs {
		if isBundle[i] {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// bundleCandidate reports whether a referrers-list entry may be a bundle
// signature and is worth fetching.
func bundleCandidate(d v1.Descriptor) bool {
	if d.MediaType != types.OCIManifestSchema1 {
		return false // an index or anything else is not followed
	}
	switch d.ArtifactType {
	case BundleMediaType, bundleMediaTypeAlt, "", EmptyMediaType:
	default:
		return false
	}
	if pt, ok := d.Annotations[annotationBundlePredicateType]; ok && pt != SignPredicateType {
		return false // an attestation (cosign attest), not a signature
	}
	return true
}

// readBundle fetches one referrer and its bundle. ok is false when the
// referrer turns out not to be a bundle of predicate type want at all.
func readBundle(ctx context.Context, repo name.Repository, d v1.Descriptor, opts []remote.Option, want string) (s Signature, ok bool) {
	src := "referrer " + d.Digest.String()
	malformed := func(format string, args ...any) (Signature, bool) {
		return Signature{Format: FormatBundle, Source: src, Err: errMalformed{fmt.Errorf(format, args...)}}, true
	}
	if d.Size > MaxReferrerManifestSize {
		return malformed("manifest of %d bytes exceeds the %d-byte limit", d.Size, MaxReferrerManifestSize)
	}
	desc, err := remote.Get(repo.Digest(d.Digest.String()), opts...)
	if registry.IsNotFound(err) {
		return malformed("listed referrer manifest does not exist")
	}
	if err != nil {
		return Signature{Format: FormatBundle, Source: src, Err: fmt.Errorf("fetching referrer %s: %w", d.Digest, err)}, true
	}
	if len(desc.Manifest) > MaxReferrerManifestSize {
		return malformed("manifest of %d bytes exceeds the %d-byte limit", len(desc.Manifest), MaxReferrerManifestSize)
	}
	if desc.MediaType != types.OCIManifestSchema1 {
		return Signature{}, false
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return malformed("parsing referrer manifest: %v", err)
	}
	if !isBundleManifest(m) {
		return Signature{}, false
	}
	if pt, ok := m.Annotations[annotationBundlePredicateType]; (ok || want != SignPredicateType) && pt != want {
		return Signature{}, false
	}
	if len(m.Layers) != 1 {
		return malformed("bundle referrer has %d layers, want 1", len(m.Layers))
	}
	l := m.Layers[0]
	if !strings.HasPrefix(string(l.MediaType), bundleLayerPrefix) {
		return malformed("bundle referrer layer has media type %q", l.MediaType)
	}
	if l.Size > MaxBundleSize || l.Size < 0 {
		return malformed("bundle of %d bytes exceeds the %d-byte limit", l.Size, MaxBundleSize)
	}
	data, ok := inlineContent(l)
	if !ok {
		var err error
		if data, err = fetchLimited(ctx, repo, l.Digest, MaxBundleSize, opts); err != nil {
			return Signature{Format: FormatBundle, Source: src, Err: err}, true
		}
	}
	b, err := ParseBundle(data)
	if err != nil {
		return malformed("%v", err)
	}
	s = bundleSignature(b, src)
	s.Keyless = bundleKeyless(b, data)
	return s, true
}

// isBundleManifest reports whether a referrer manifest says it carries a
// sigstore bundle, by artifactType, config media type, or its layer.
func isBundleManifest(m *v1.Manifest) bool {
	isBundle := func(mt string) bool { return mt == BundleMediaType || mt == bundleMediaTypeAlt }
	if isBundle(m.ArtifactType) || isBundle(string(m.Config.MediaType)) {
		return true
	}
	return len(m.Layers) == 1 && strings.HasPrefix(string(m.Layers[0].MediaType), bundleLayerPrefix)
}

// fetchLimited reads blob digest of repo, at most max bytes; its digest is
// checked as it is read to the end.
func fetchLimited(ctx context.Context, repo name.Repository, digest v1.Hash, max int64, opts []remote.Option) ([]byte, error) {
	l, err := remote.Layer(repo.Digest(digest.String()), append(slices.Clip(opts), remote.WithContext(ctx))...)
	if err != nil {
		return nil, fmt.Errorf("fetching bundle %s: %w", digest, err)
	}
	rc, err := l.Compressed()
	if registry.IsNotFound(err) {
		return nil, errMalformed{fmt.Errorf("bundle blob %s does not exist", digest)}
	}
	if err != nil {
		return nil, fmt.Errorf("fetching bundle %s: %w", digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading bundle %s: %w", digest, err)
	}
	if int64(len(b)) > max {
		return nil, errMalformed{fmt.Errorf("bundle %s exceeds the %d-byte limit", digest, max)}
	}
	return b, nil
}

// AppendBundle attaches bundle (see NewBundle) to digest in repo as an OCI
// 1.1 referrer the way cosign v3 does: the empty config and the bundle
// blob, then an image manifest with artifactType BundleMediaType and
// subject digest's descriptor; a bundle of at most MaxInlineSize bytes is
// also embedded in its layer descriptor's data (trustcache's readers then
// need no blob fetch; other readers fetch the blob as before). Where the
// registry has no referrers API, go-containerregistry adds the manifest to
// the referrers tag "sha256-<hex>" — a read-modify-write that concurrent
// signers can undo — so the referrers list is read back until the manifest
// is seen there several times in a row, and the manifest written again
// (which re-adds it) if it went missing, at most ao.Attempts times.
// ao.Same, if set, makes an equivalent bundle already attached a no-op:
// added=false (the candidates are the signatures, or for another
// ao.PredicateType the attestations of that type).
func AppendBundle(ctx context.Context, repo name.Repository, digest v1.Hash, bundle []byte, ao AppendOptions, opts ...remote.Option) (added bool, err error) {
	if ao.Attempts <= 0 {
		ao.Attempts = 10
	}
	if ao.PredicateType == "" {
		ao.PredicateType = SignPredicateType
	}
	if len(bundle) > MaxBundleSize {
		return false, fmt.Errorf("bundle of %d bytes exceeds the %d-byte limit", len(bundle), MaxBundleSize)
	}
	opts = append(slices.Clip(opts), remote.WithContext(ctx))
	subject := repo.Digest(digest.String())

	if ao.Same != nil {
		read := ReadBundles
		if ao.PredicateType != SignPredicateType {
			read = func(ctx context.Context, repo name.Repository, digest v1.Hash, opts ...remote.Option) ([]Signature, error) {
				return ReadAttestations(ctx, repo, digest, ao.PredicateType, opts...)
			}
		}
		existing, err := read(ctx, repo, digest, opts...)
		if err != nil {
			return false, err
		}
		for _, s := range existing {
			if s.Err == nil && ao.Same(s) {
				return false, nil
			}
		}
	}

	sd, err := remote.Head(subject, opts...)
	if err != nil {
		return false, fmt.Errorf("resolving %s: %w", subject, err)
	}
	config := static.NewLayer([]byte("{}"), EmptyMediaType)
	layer := static.NewLayer(bundle, BundleMediaType)
	var descs [2]v1.Descriptor
	for i, l := range []v1.Layer{config, layer} {
		if err := remote.WriteLayer(repo, l, opts...); err != nil {
			return false, fmt.Errorf("uploading bundle to %s: %w", repo, err)
		}
		descs[i], err = layerDescriptor(l)
		if err != nil {
			return false, err
		}
	}
	descs[0].ArtifactType = BundleMediaType // as cosign writes it
	if len(bundle) <= MaxInlineSize {
		descs[1].Data = bundle // spares trustcache's readers the blob fetch
	}
	m, err := newRawManifest(v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  BundleMediaType,
		Config:        descs[0],
		Layers:        descs[1:],
		Subject:       &v1.Descriptor{MediaType: sd.MediaType, Digest: sd.Digest, Size: sd.Size},
		Annotations: map[string]string{
			annotationImageCreated:        time.Now().UTC().Format(time.RFC3339),
			annotationBundleContent:       "dsse-envelope",
			annotationBundlePredicateType: ao.PredicateType,
		},
	})
	if err != nil {
		return false, err
	}
	ref := repo.Digest(m.digest.String())

	present := func() (bool, error) { return listsReferrer(subject, m.digest, opts) }
	write := func() error {
		if err := remote.Put(ref, m, opts...); err != nil {
			return fmt.Errorf("writing bundle referrer %s: %w", ref, err)
		}
		return nil
	}
	if err := writeUntilKept(ctx, ao.Attempts, present, write); err != nil {
		return false, fmt.Errorf("referrers of %s: %w", subject, err)
	}
	return true, nil
}

// listsReferrer reports whether subject's referrers list holds manifest.
func listsReferrer(subject name.Digest, manifest v1.Hash, opts []remote.Option) (bool, error) {
	idx, err := remote.Referrers(subject, opts...)
	if err != nil {
		return false, fmt.Errorf("listing referrers of %s: %w", subject, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return false, fmt.Errorf("listing referrers of %s: %w", subject, err)
	}
	for _, d := range im.Manifests {
		if d.Digest == manifest {
			return true, nil
		}
	}
	return false, nil
}

func layerDescriptor(l v1.Layer) (v1.Descriptor, error) {
	mt, err := l.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, err := l.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := l.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: size}, nil
}

// rawManifest is a manifest pushed as the exact bytes it was serialized to.
type rawManifest struct {
	raw    []byte
	digest v1.Hash
}

func newRawManifest(m v1.Manifest) (rawManifest, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return rawManifest{}, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return rawManifest{}, err
	}
	return rawManifest{raw: raw, digest: h}, nil
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// SignBundle signs digest in repo with the signer's key as a sigstore
// bundle and attaches it as an OCI referrer (AppendBundle). The statement's
// subject annotations are annotations plus builder, created, and identity
// (the repository, which cosign's statement does not sign otherwise). A
// bundle by the same key over the same digest and annotations (whatever its
// time, but fresh under s.MaxAge) already there makes it a no-op:
// added=false.
func (s Signer) SignBundle(ctx context.Context, repo name.Repository, digest v1.Hash, annotations map[string]string, opts ...remote.Option) (added bool, err error) {
	a, err := s.signBundle(ctx, repo, digest, annotations, opts...)
	return a.Added, err
}

func (s Signer) signBundle(ctx context.Context, repo name.Repository, digest v1.Hash, annotations map[string]string, opts ...remote.Option) (Attachment, error) {
	if s.Keyless != nil {
		sig, added, err := s.signBundleKeyless(ctx, repo, digest, annotations, opts...)
		return Attachment{Signature: sig, Added: added}, err
	}
	ann := s.annotations(annotations)
	ann[AnnotationIdentity] = repo.Name()
	statement, err := NewStatement(digest, ann)
	if err != nil {
		return Attachment{}, err
	}
	bundle, err := NewBundle(statement, s.Key)
	if err != nil {
		return Attachment{}, fmt.Errorf("signing %s@%s: %w", repo.Name(), digest, err)
	}
	b, err := ParseBundle(bundle)
	if err != nil {
		return Attachment{}, fmt.Errorf("signing %s@%s: the bundle made does not parse: %w", repo.Name(), digest, err)
	}
	kept := bundleSignature(b, "bundle (signed here)")
	var aged agedSet
	same := func(existing Signature) bool {
		if existing.Format != FormatBundle || keys.VerifySignature(s.Key.Public(), existing.SignedBytes(), existing.Signature) != nil {
			return false
		}
		st, err := ParseStatement(existing.Payload)
		if err != nil || st.Digest() != digest {
			return false
		}
		if !sameButCreated(st.Annotations(), ann) {
			return false
		}
		if ok, t := s.fresh(st.Annotations()); !ok {
			aged.add(s, existing, t)
			return false
		}
		kept = existing
		return true
	}
	// An aged bundle stays: removing a referrer means deleting its manifest
	// (and, without the referrers API, rewriting the referrers tag), which
	// many registries refuse. It no longer counts, and the fresh one makes
	// the next signing a no-op: at most one is added per MaxAge.
	added, err := AppendBundle(ctx, repo, digest, bundle, AppendOptions{Same: same}, opts...)
	a := Attachment{Signature: kept, Added: added}
	if added {
		a.Aged, a.Refreshed = aged.newest, aged.seen
	}
	return a, err
}
