package registry

import (
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Digest is the manifest digest r names: its own for a digest reference
// (no request), else the registry's answer to a HEAD of the tag. A tag that
// does not exist is an error IsNotFound recognizes.
func Digest(r name.Reference, opts ...remote.Option) (v1.Hash, error) {
	if d, ok := r.(name.Digest); ok {
		return v1.NewHash(d.DigestStr())
	}
	desc, err := remote.Head(r, opts...)
	if err != nil {
		return v1.Hash{}, err
	}
	return desc.Digest, nil
}
