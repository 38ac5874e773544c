package buildargs

import (
	"encoding/json"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Metadata is the part of buildx's --metadata-file trustcache reads: a
// build's whole file, or one bake target's entry.
type Metadata struct {
	CacheManifest json.RawMessage `json:"cache.manifest"`        // a descriptor, or a JSON string holding one
	ImageDigest   string          `json:"containerimage.digest"` // the pushed manifest or index
	ImageName     string          `json:"image.name"`            // comma-separated names
}

// ReadMetadata reads a build's --metadata-file at path.
func ReadMetadata(path string) (Metadata, error) {
	var md Metadata
	data, err := os.ReadFile(path)
	if err != nil {
		return md, fmt.Errorf("reading the build metadata: %w", err)
	}
	if err := json.Unmarshal(data, &md); err != nil {
		return md, fmt.Errorf("parsing the build metadata %s: %w", path, err)
	}
	return md, nil
}

// BakeMetadata is a bake's --metadata-file: an entry a target, and others
// (buildx.build.warnings) that are not Metadata.
type BakeMetadata map[string]json.RawMessage

// ReadBakeMetadata reads a bake's --metadata-file at path.
func ReadBakeMetadata(path string) (BakeMetadata, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the bake metadata: %w", err)
	}
	var md BakeMetadata
	if err := json.Unmarshal(data, &md); err != nil {
		return nil, fmt.Errorf("parsing the bake metadata %s: %w", path, err)
	}
	return md, nil
}

// Target returns target's entry; ok is false when the bake reported
// nothing for it.
func (b BakeMetadata) Target(target string) (md Metadata, ok bool, err error) {
	raw, ok := b[target]
	if !ok {
		return md, false, nil
	}
	if err := json.Unmarshal(raw, &md); err != nil {
		return md, true, fmt.Errorf("target %s: parsing the bake metadata: %w", target, err)
	}
	return md, true, nil
}

// CacheDigest reads the digest of buildx's "cache.manifest": a
// descriptor, written either as an object or as a JSON string holding one.
func (md Metadata) CacheDigest() (v1.Hash, error) {
	raw := md.CacheManifest
	if len(raw) == 0 {
		return v1.Hash{}, fmt.Errorf("no cache.manifest in the build metadata")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(s)
	}
	var desc struct {
		Digest string `json:"digest"`
	}
	if err := json.Unmarshal(raw, &desc); err != nil {
		return v1.Hash{}, fmt.Errorf("cache.manifest: %w", err)
	}
	return v1.NewHash(desc.Digest)
}
