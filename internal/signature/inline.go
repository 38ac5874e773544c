package signature

import (
	"crypto/sha256"
	"encoding/hex"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Embedded content: OCI image-spec 1.1 lets a descriptor carry the content
// it names in its "data" field (base64 in JSON). trustcache's signers put
// the payload (tag scheme) or the bundle (referrers) there as well as in
// the blob, so that trustcache's readers need no blob fetch — on a cold
// verification the largest share of the registry's work. The blob is
// still pushed: cosign and every other reader fetch it, and readers that
// do not know the field ignore it.

// MaxInlineSize bounds the content a signer embeds in a descriptor.
// Payloads and key-signed bundles are a few hundred bytes to about 1 KiB;
// larger content (many or long signed annotations) is written as a blob
// only. The bound keeps a full signature list small: MaxSignatures
// descriptors that each embed MaxInlineSize bytes (4/3 of it as base64)
// make a manifest of about 1.5 MiB, well under the 4 MiB registries accept
// for a manifest and readers accept for a response (registry.MaxResponseBody).
const MaxInlineSize = 4 << 10

// inlineLayer is a layer whose manifest descriptor embeds its content.
// mutate.Append builds the descriptor of an appended layer with
// partial.Descriptor, which asks the layer itself when it has a
// Descriptor method.
type inlineLayer struct {
	v1.Layer
	content []byte
}

// withInlineContent returns l, whose content is content, so that its
// descriptor embeds content when it is at most MaxInlineSize bytes.
func withInlineContent(l v1.Layer, content []byte) v1.Layer {
	if len(content) > MaxInlineSize {
		return l
	}
	return inlineLayer{Layer: l, content: content}
}

// Descriptor returns the layer's descriptor with its content as data.
func (l inlineLayer) Descriptor() (*v1.Descriptor, error) {
	d, err := layerDescriptor(l.Layer)
	if err != nil {
		return nil, err
	}
	d.Data = l.content
	return &d, nil
}

// inlineContent returns the content d embeds when it is exactly the content
// d names: as many bytes as d's size, with d's sha256 digest. Anything else
// — no data, another size, another content, another digest algorithm — is
// ok=false, and the caller fetches the blob as for a descriptor without
// data, so that what the digest names decides, never the embedded bytes.
// The digest check is what makes the data as trustworthy as a blob fetched
// by digest: the manifest holding d is not itself signed.
func inlineContent(d v1.Descriptor) (content []byte, ok bool) {
	if len(d.Data) == 0 || int64(len(d.Data)) != d.Size || d.Digest.Algorithm != "sha256" {
		return nil, false
	}
	sum := sha256.Sum256(d.Data)
	if hex.EncodeToString(sum[:]) != d.Digest.Hex {
		return nil, false
	}
	return d.Data, true
}
