package gateway

import (
	"context"
	"errors"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
)

// buildIDKey is the metadata key a client-side frontend's LLBBridge calls
// name their build with (BuildKit's client/buildid): the Ref of the
// Control.Solve they run under.
const buildIDKey = "buildkit-controlapi-buildid"

// solveRef is SolveRequest.Ref (field 1) of a Control.Solve request.
const solveRef protowire.Number = 1

// buildKey names the build a Solve request belongs to, "" if it names
// none: a Control.Solve's Ref; an LLBBridge.Solve's build ID, as buildkitd
// reads it (exactly one value).
func buildKey(ctx context.Context, method string, req []byte) string {
	if method == "/moby.buildkit.v1.frontend.LLBBridge/Solve" {
		md, _ := metadata.FromIncomingContext(ctx)
		if ids := md.Get(buildIDKey); len(ids) == 1 {
			return ids[0]
		}
		return ""
	}
	fs, err := fields(req)
	if err != nil {
		return ""
	}
	ref := ""
	for _, f := range fs {
		if f.num == solveRef && f.typ == protowire.BytesType {
			ref = string(f.val) // the last one wins, as in buildkitd
		}
	}
	return ref
}

// errScopeClosed refuses an Add to the scope of a build whose calls ended.
var errScopeClosed = errors.New("the build's endpoint scope is closed")

// buildScopes hands each build one scope of the verified content endpoint:
// its Control.Solve and the LLBBridge.Solve calls of its client-side
// frontend share it (a cache the frontend imports is read lazily, up to
// the build's export), and it is closed when the last of those calls ends.
// Then the references buildkitd was given for the build answer 404.
type buildScopes struct {
	ep Endpoint

	mu sync.Mutex
	m  map[string]*buildScope // open scopes, by build
}

// buildScope is one build's scope, opened in the endpoint on the first Add.
type buildScope struct {
	ep    Endpoint
	key   string
	users int // guarded by buildScopes.mu

	mu     sync.Mutex
	sc     Scope
	closed bool
}

// acquire returns the scope of build key, opening it; a call that names no
// build gets a scope of its own. Each acquire is paired with a release.
func (b *buildScopes) acquire(key string) *buildScope {
	if key == "" {
		return &buildScope{ep: b.ep, users: 1}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bs := b.m[key]
	if bs == nil {
		bs = &buildScope{ep: b.ep, key: key}
		if b.m == nil {
			b.m = map[string]*buildScope{}
		}
		b.m[key] = bs
	}
	bs.users++
	return bs
}

// release ends one call's use of bs; the last one closes it.
func (b *buildScopes) release(bs *buildScope) {
	b.mu.Lock()
	bs.users--
	last := bs.users == 0
	if last && bs.key != "" && b.m[bs.key] == bs {
		delete(b.m, bs.key)
	}
	b.mu.Unlock()
	if last {
		bs.close()
	}
}

// open returns the number of builds with a scope open.
func (b *buildScopes) open() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// Add registers a verified cache in the build's scope, opening it in the
// endpoint first.
func (bs *buildScope) Add(repo name.Repository, digest v1.Hash) (string, error) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.closed {
		return "", errScopeClosed
	}
	if bs.sc == nil {
		sc, err := bs.ep.NewScope()
		if err != nil {
			return "", err
		}
		bs.sc = sc
	}
	return bs.sc.Add(repo, digest)
}

func (bs *buildScope) close() {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	bs.closed = true
	if bs.sc != nil {
		bs.sc.Close()
	}
}
