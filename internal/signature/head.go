package signature

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// Tag heads (docs/fallback.md): a small signed record per cache tag that a
// trusted builder writes when it signs REPO:TAG. It names the tag, the
// digest, a sequence number that only grows and the digest the previous
// head named, so that a fresh host finds the newest trusted digest of a
// tag in one request, and a host that saw a head never accepts an older
// one. It lives in the same repository, under the tag HeadTag names: an
// OCI image manifest with one layer, the head payload (also embedded in
// the descriptor's data), and the signature over it in the layer's
// SignatureAnnotation — the shape and key of a .sig signature, with its
// own payload type, so that a head is never mistaken for a signature of
// the digest it names (ParsePayload refuses its type) nor the reverse.

// HeadPayloadType is the critical.type of a head payload.
const HeadPayloadType = "trustcache tag head"

// HeadMediaType is the media type of a head's payload layer.
const HeadMediaType types.MediaType = "application/vnd.dev.trustcache.head.v1+json"

// HeadTagPrefix starts the tag a head is stored under.
const HeadTagPrefix = "trustcache-head-"

// MaxHeadManifestSize bounds the head manifest a reader accepts. A real
// one is under 2 KiB.
const MaxHeadManifestSize = 16 << 10

// AnnotationTag is the signed annotation naming the tag a digest was
// signed for: sign REPO:TAG, build --sign and bake --sign write it; a
// digest counts as a tag's fallback only with it (docs/fallback.md).
const AnnotationTag = "tag"

// maxTagLength is the longest tag the distribution spec allows.
const maxTagLength = 128

// HeadTag returns the tag the head of tag is stored under in repo:
// "trustcache-head-TAG", or "trustcache-head-sha256-HEX" (the SHA-256 of
// TAG) when that would be longer than a tag may be. The head names its tag
// inside, and readers check it, so a name two tags share is no head.
func HeadTag(repo name.Repository, tag string) name.Tag {
	t := HeadTagPrefix + tag
	if len(t) > maxTagLength {
		sum := sha256.Sum256([]byte(tag))
		t = HeadTagPrefix + "sha256-" + hex.EncodeToString(sum[:])
	}
	return repo.Tag(t)
}

// IsHeadTag reports whether tag is where a head is stored.
func IsHeadTag(tag string) bool {
	return len(tag) > len(HeadTagPrefix) && tag[:len(HeadTagPrefix)] == HeadTagPrefix
}

// Head is what a head record says.
type Head struct {
	Repository string // the cache repository it names (docker-reference)
	Tag        string
	Digest     v1.Hash
	// Sequence only grows: each head's is the larger of the previous
	// head's plus one and its signing time in Unix milliseconds, so that a
	// lost or deleted head does not restart it.
	Sequence uint64
	// Previous is the digest the previous head named; "" for the first.
	Previous string
	Created  time.Time
	Builder  string
}

// headPayload is the JSON of a head: a simple-signing payload's shape.
type headPayload struct {
	Critical Critical    `json:"critical"`
	Optional headOptions `json:"optional"`
}

type headOptions struct {
	Tag      string `json:"tag"`
	Sequence uint64 `json:"sequence"`
	Previous string `json:"previous,omitempty"`
	Created  string `json:"created"`
	Builder  string `json:"builder,omitempty"`
}

// NewHeadPayload returns the signed payload of h.
func NewHeadPayload(h Head) ([]byte, error) {
	if h.Repository == "" || h.Tag == "" {
		return nil, errors.New("head: empty repository or tag")
	}
	if h.Digest.Algorithm != "sha256" || len(h.Digest.Hex) != 64 {
		return nil, fmt.Errorf("head: digest %q is not sha256", h.Digest)
	}
	if h.Sequence == 0 {
		return nil, errors.New("head: sequence 0")
	}
	return json.Marshal(headPayload{
		Critical: Critical{
			Identity: Identity{DockerReference: h.Repository},
			Image:    Image{DockerManifestDigest: h.Digest.String()},
			Type:     HeadPayloadType,
		},
		Optional: headOptions{Tag: h.Tag, Sequence: h.Sequence, Previous: h.Previous, Created: h.Created.UTC().Format(time.RFC3339), Builder: h.Builder},
	})
}

// ParseHead parses a head payload whose signature has been verified: one
// JSON object of at most MaxPayloadSize bytes, of HeadPayloadType, naming
// a repository, a sha256 digest, a tag, a sequence above 0 and an RFC 3339
// creation time.
func ParseHead(data []byte) (*Head, error) {
	if len(data) > MaxPayloadSize {
		return nil, fmt.Errorf("head payload of %d bytes exceeds the %d-byte limit", len(data), MaxPayloadSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var p headPayload
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decoding head payload: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decoding head payload: trailing data after the JSON object")
	}
	if p.Critical.Type != HeadPayloadType {
		return nil, fmt.Errorf("head payload type is %q, want %q", p.Critical.Type, HeadPayloadType)
	}
	h := &Head{Repository: p.Critical.Identity.DockerReference, Tag: p.Optional.Tag, Sequence: p.Optional.Sequence, Previous: p.Optional.Previous, Builder: p.Optional.Builder}
	if h.Repository == "" || h.Tag == "" {
		return nil, errors.New("head payload names no repository or no tag")
	}
	d, err := v1.NewHash(p.Critical.Image.DockerManifestDigest)
	if err != nil || d.Algorithm != "sha256" {
		return nil, fmt.Errorf("head payload digest %q is not a sha256 digest", p.Critical.Image.DockerManifestDigest)
	}
	h.Digest = d
	if h.Sequence == 0 {
		return nil, errors.New("head payload has no sequence")
	}
	if h.Created, err = time.Parse(time.RFC3339, p.Optional.Created); err != nil {
		return nil, fmt.Errorf("head payload creation time %q is not RFC 3339", p.Optional.Created)
	}
	return h, nil
}

// SignedHead is a head as read from the registry: its payload and the
// signature over it, not yet verified.
type SignedHead struct {
	Source    string // the head tag, for messages
	Payload   []byte
	Signature []byte
}

// ReadHead reads the head of tag in repo: nil, nil when there is none. The
// manifest is bounded by MaxHeadManifestSize; the payload is the layer's
// embedded data when it is the content the descriptor names, else its blob
// (at most MaxPayloadSize). One request for a head trustcache wrote.
func ReadHead(ctx context.Context, repo name.Repository, tag string, opts ...remote.Option) (*SignedHead, error) {
	ht := HeadTag(repo, tag)
	opts = append(slices.Clip(opts), remote.WithContext(ctx))
	desc, err := remote.Get(ht, opts...)
	if registry.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetching head %s: %w", ht, err)
	}
	if len(desc.Manifest) > MaxHeadManifestSize {
		return nil, errMalformed{fmt.Errorf("head %s: manifest of %d bytes exceeds the %d-byte limit", ht, len(desc.Manifest), MaxHeadManifestSize)}
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, errMalformed{fmt.Errorf("head %s: parsing manifest: %w", ht, err)}
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != HeadMediaType {
		return nil, errMalformed{fmt.Errorf("head %s: want one %s layer", ht, HeadMediaType)}
	}
	l := m.Layers[0]
	sig, err := base64.StdEncoding.DecodeString(l.Annotations[SignatureAnnotation])
	if err != nil || len(sig) == 0 {
		return nil, errMalformed{fmt.Errorf("head %s: no valid signature annotation", ht)}
	}
	if l.Size > MaxPayloadSize || l.Size < 0 {
		return nil, errMalformed{fmt.Errorf("head %s: payload of %d bytes exceeds the %d-byte limit", ht, l.Size, MaxPayloadSize)}
	}
	payload, ok := inlineContent(l)
	if !ok {
		if payload, err = fetchBlob(ctx, repo, l.Digest, opts); err != nil {
			return nil, fmt.Errorf("head %s: %w", ht, err)
		}
	}
	return &SignedHead{Source: ht.TagStr(), Payload: payload, Signature: sig}, nil
}

// HeadOptions tune WriteHead.
type HeadOptions struct {
	// Trusted reports whether the head already there was signed by a key
	// this writer trusts (a key of the policy's builders); its sequence is
	// then continued and its digest recorded as Previous. Nil: only a head
	// signed by the writer's own key.
	Trusted func(payload, sig []byte) bool
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// WriteHead makes digest the head of tag in repo, signed with key as
// builder. A head already there that this key signed for the same tag and
// digest makes it a no-op (written=false): signing an unchanged digest
// again adds no head. The head returned is the one in place.
func WriteHead(ctx context.Context, key crypto.Signer, builder string, repo name.Repository, tag string, digest v1.Hash, ho HeadOptions, opts ...remote.Option) (head *Head, written bool, err error) {
	if key == nil {
		return nil, false, errors.New("writing head: no key (keyless signers write no head)")
	}
	now := time.Now
	if ho.Now != nil {
		now = ho.Now
	}
	trusted := ho.Trusted
	own := func(payload, sig []byte) bool { return keys.VerifySignature(key.Public(), payload, sig) == nil }
	if trusted == nil {
		trusted = own
	}
	cur, err := ReadHead(ctx, repo, tag, opts...)
	if err != nil && !IsMalformed(err) {
		return nil, false, err
	}
	var prev *Head
	if cur != nil && trusted(cur.Payload, cur.Signature) {
		if h, err := ParseHead(cur.Payload); err == nil && h.Tag == tag && h.Repository == repo.Name() {
			prev = h
		}
	}
	if prev != nil && prev.Digest == digest && own(cur.Payload, cur.Signature) {
		return prev, false, nil
	}
	h := Head{Repository: repo.Name(), Tag: tag, Digest: digest, Created: now().UTC().Truncate(time.Second), Builder: builder}
	h.Sequence = uint64(max(now().UnixMilli(), 1))
	if prev != nil {
		h.Previous = prev.Digest.String()
		if prev.Sequence >= h.Sequence && prev.Sequence < 1<<62 {
			h.Sequence = prev.Sequence + 1
		}
	}
	payload, err := NewHeadPayload(h)
	if err != nil {
		return nil, false, err
	}
	sig, err := keys.Sign(key, payload)
	if err != nil {
		return nil, false, fmt.Errorf("signing head of %s:%s: %w", repo.Name(), tag, err)
	}
	img, err := mutate.Append(emptySignatures(), mutate.Addendum{
		Layer:       withInlineContent(static.NewLayer(payload, HeadMediaType), payload),
		MediaType:   HeadMediaType,
		Annotations: map[string]string{SignatureAnnotation: base64.StdEncoding.EncodeToString(sig)},
	})
	if err != nil {
		return nil, false, fmt.Errorf("building head of %s:%s: %w", repo.Name(), tag, err)
	}
	ht := HeadTag(repo, tag)
	if err := remote.Write(ht, img, append(slices.Clip(opts), remote.WithContext(ctx))...); err != nil {
		return nil, false, fmt.Errorf("writing head %s: %w", ht, err)
	}
	return &h, true, nil
}
