package signature

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// PayloadType is the critical.type of a cosign simple-signing payload.
const PayloadType = "cosign container image signature"

// MaxPayloadSize bounds the size of one signed payload. Real payloads are a
// few hundred bytes; anything larger is refused unread.
const MaxPayloadSize = 64 << 10

// Signed annotations trustcache writes into the payload's "optional" map.
// The source keys are filled from CI environment variables where they tell.
const (
	AnnotationBuilder  = "builder"  // the builder name of the signing key
	AnnotationCreated  = "created"  // RFC 3339 signing time
	AnnotationRepo     = "repo"     // source repository, e.g. github.com/acme/app
	AnnotationRef      = "ref"      // source ref, e.g. refs/heads/main
	AnnotationCommit   = "commit"   // source commit
	AnnotationRun      = "run"      // CI run URL or id
	AnnotationIdentity = "identity" // the cache repository, for bundle signatures
)

// Reserved reports whether annotation key is one trustcache writes itself
// (builder, created): a user annotation may not set it.
func Reserved(key string) bool {
	return key == AnnotationBuilder || key == AnnotationCreated
}

// Payload is cosign's simple-signing payload.
type Payload struct {
	Critical Critical       `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// Critical is the part of the payload every verifier must check.
type Critical struct {
	Identity Identity `json:"identity"`
	Image    Image    `json:"image"`
	Type     string   `json:"type"`
}

// Identity names the repository the signature is for.
type Identity struct {
	DockerReference string `json:"docker-reference"`
}

// Image names the manifest digest the signature is for.
type Image struct {
	DockerManifestDigest string `json:"docker-manifest-digest"`
}

// NewPayload returns the simple-signing payload for digest in repository
// repo, with the given annotations in "optional".
func NewPayload(repo string, digest v1.Hash, annotations map[string]string) ([]byte, error) {
	if repo == "" {
		return nil, errors.New("payload: empty repository")
	}
	if digest.Algorithm != "sha256" || len(digest.Hex) != 64 {
		return nil, fmt.Errorf("payload: digest %q is not sha256", digest)
	}
	opt := make(map[string]any, len(annotations))
	for k, v := range annotations {
		opt[k] = v
	}
	p := Payload{
		Critical: Critical{
			Identity: Identity{DockerReference: repo},
			Image:    Image{DockerManifestDigest: digest.String()},
			Type:     PayloadType,
		},
		Optional: opt,
	}
	if len(opt) == 0 {
		p.Optional = nil
	}
	return json.Marshal(p)
}

// ParsePayload parses and checks a simple-signing payload: it must be one
// JSON object of at most MaxPayloadSize bytes, of PayloadType, naming a
// repository and a sha256 manifest digest.
func ParsePayload(data []byte) (*Payload, error) {
	if len(data) > MaxPayloadSize {
		return nil, fmt.Errorf("payload of %d bytes exceeds the %d-byte limit", len(data), MaxPayloadSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var p Payload
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decoding payload: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decoding payload: trailing data after the JSON object")
	}
	if !strings.EqualFold(p.Critical.Type, PayloadType) {
		return nil, fmt.Errorf("payload type is %q, want %q", p.Critical.Type, PayloadType)
	}
	if p.Critical.Identity.DockerReference == "" {
		return nil, errors.New("payload names no docker-reference")
	}
	h, err := v1.NewHash(p.Critical.Image.DockerManifestDigest)
	if err != nil || h.Algorithm != "sha256" {
		return nil, fmt.Errorf("payload digest %q is not a sha256 digest", p.Critical.Image.DockerManifestDigest)
	}
	return &p, nil
}

// Digest returns the manifest digest the payload signs.
func (p *Payload) Digest() v1.Hash {
	h, _ := v1.NewHash(p.Critical.Image.DockerManifestDigest) // checked by ParsePayload
	return h
}

// Annotations returns the string-valued entries of "optional". Values of
// other JSON types are rendered with fmt, as cosign prints them.
func (p *Payload) Annotations() map[string]string {
	out := make(map[string]string, len(p.Optional))
	for k, v := range p.Optional {
		switch v := v.(type) {
		case string:
			out[k] = v
		case nil:
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}
