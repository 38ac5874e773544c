package endpoint

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// maxManifests bounds the manifests one name serves (its root and every
// manifest reachable from it). A buildx cache is one manifest, or an index
// of a few platform and attestation manifests.
const maxManifests = 256

// errUnreachable: the digest is not reachable from the verified manifests
// of the name.
var errUnreachable = errors.New("not reachable from the verified manifest")

// source is one verified cache: the content reachable from its root
// manifest, as far as the manifests verified so far tell.
type source struct {
	cache    string // REPO@sha256:… as given to Add
	root     v1.Hash
	upstream *upstream

	mu        sync.Mutex
	manifests map[v1.Hash]*manifestEntry
	blobs     map[v1.Hash]v1.Descriptor // config, layers and index entries that are not manifests
}

// manifestEntry is a manifest the source may serve: the root, or one a
// verified index lists.
type manifestEntry struct {
	// listed is the media type the verified parent lists it with ("" for
	// the root).
	listed string

	data      []byte // verified bytes; nil until fetched
	mediaType string
	failed    error         // a Mismatch: the registry is not asked again
	loading   chan struct{} // closed when a fetch in progress ends
}

func newSource(cache string, root v1.Hash, u *upstream) *source {
	return &source{
		cache:     cache,
		root:      root,
		upstream:  u,
		manifests: map[v1.Hash]*manifestEntry{root: {}},
		blobs:     map[v1.Hash]v1.Descriptor{},
	}
}

// manifest returns the verified bytes and media type of manifest d, if
// it is the root or a verified manifest lists it.
func (src *source) manifest(ctx context.Context, d v1.Hash) ([]byte, string, error) {
	if err := src.reach(ctx, func() bool { return src.manifests[d] != nil }); err != nil {
		return nil, "", err
	}
	return src.load(ctx, d)
}

// blob returns the descriptor of blob d if a verified manifest of src
// refers to it.
func (src *source) blob(ctx context.Context, d v1.Hash) (v1.Descriptor, error) {
	if err := src.reach(ctx, func() bool { _, ok := src.blobs[d]; return ok }); err != nil {
		return v1.Descriptor{}, err
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	return src.blobs[d], nil
}

// reach fetches (and verifies) the manifests of src not fetched yet until
// known, called with src.mu held, reports true. It fails with
// errUnreachable when none is left, or with the error of a manifest that
// could not be fetched. A client asks for the root first, and nothing is
// fetched then; a client that asks for a child manifest or a blob first
// makes the root (and as many of its children as it takes) be fetched.
func (src *source) reach(ctx context.Context, known func() bool) error {
	var lastErr error
	for {
		src.mu.Lock()
		ok := known()
		var pending []v1.Hash
		for md, e := range src.manifests {
			if e.data == nil && e.failed == nil {
				pending = append(pending, md)
			}
		}
		src.mu.Unlock()
		if ok {
			return nil
		}
		progress := false
		for _, md := range pending {
			if _, _, err := src.load(ctx, md); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				lastErr = err
				continue
			}
			progress = true
		}
		if !progress {
			if lastErr != nil {
				return lastErr
			}
			return errUnreachable
		}
	}
}

// load returns the verified bytes and media type of manifest d, which src
// lists, fetching and checking them on first use. Concurrent callers share
// one fetch; a fetch that fails for want of its caller's context is taken
// over by the next caller.
func (src *source) load(ctx context.Context, d v1.Hash) ([]byte, string, error) {
	src.mu.Lock()
	e := src.manifests[d]
	for e.loading != nil {
		ch := e.loading
		src.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
		src.mu.Lock()
	}
	if e.data != nil || e.failed != nil {
		defer src.mu.Unlock()
		return e.data, e.mediaType, e.failed
	}
	ch := make(chan struct{})
	e.loading = ch
	src.mu.Unlock()

	data, contentType, err := src.upstream.manifest(ctx, d)

	src.mu.Lock()
	defer src.mu.Unlock()
	e.loading = nil
	close(ch)
	if err != nil {
		var r *refusal
		if errors.As(err, &r) && r.kind == Mismatch {
			e.failed = err
		}
		return nil, "", err
	}
	parsed := parseManifest(data)
	e.data, e.mediaType = data, mediaTypeOf(parsed.MediaType, e.listed, contentType, parsed)
	src.add(parsed)
	return e.data, e.mediaType, nil
}

// add makes what a verified manifest refers to servable: manifests by
// their media type, everything else as blobs. Digests other than sha256
// are left out. The caller holds src.mu.
func (src *source) add(m manifestJSON) {
	descs := append(append([]v1.Descriptor{}, m.Manifests...), m.Layers...)
	if m.Config != nil {
		descs = append(descs, *m.Config)
	}
	for _, d := range descs {
		if d.Digest.Algorithm != "sha256" || d.Size < 0 {
			continue
		}
		if isManifestType(string(d.MediaType)) {
			if src.manifests[d.Digest] == nil && len(src.manifests) < maxManifests {
				src.manifests[d.Digest] = &manifestEntry{listed: string(d.MediaType)}
			}
			continue
		}
		if _, ok := src.blobs[d.Digest]; !ok {
			src.blobs[d.Digest] = v1.Descriptor{MediaType: d.MediaType, Size: d.Size, Digest: d.Digest}
		}
	}
}

// manifestJSON is what the Server reads of a manifest or an index.
type manifestJSON struct {
	MediaType string          `json:"mediaType"`
	Config    *v1.Descriptor  `json:"config"`
	Layers    []v1.Descriptor `json:"layers"`
	Manifests []v1.Descriptor `json:"manifests"`
}

// parseManifest reads b as a manifest or index. Verified bytes that do not
// parse are served, but nothing is reachable from them.
func parseManifest(b []byte) manifestJSON {
	var m manifestJSON
	if err := json.Unmarshal(b, &m); err != nil {
		return manifestJSON{}
	}
	return m
}

// mediaTypeOf is the Content-Type a verified manifest is served with: the
// media type its own (hashed) bytes declare, else the one its verified
// parent lists it with, else the registry's Content-Type if it is a
// manifest type, else what its shape says.
func mediaTypeOf(declared, listed, contentType string, m manifestJSON) string {
	switch {
	case declared != "":
		return declared
	case listed != "":
		return listed
	case isManifestType(contentType):
		return contentType
	case m.Manifests != nil:
		return string(types.OCIImageIndex)
	}
	return string(types.OCIManifestSchema1)
}

func isManifestType(mt string) bool {
	switch types.MediaType(mt) {
	case types.OCIManifestSchema1, types.OCIImageIndex, types.DockerManifestSchema2, types.DockerManifestList:
		return true
	}
	return false
}

// digestOf is the sha256 digest of b.
func digestOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}
