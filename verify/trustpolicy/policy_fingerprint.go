package trustpolicy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"sort"
	"strconv"
)

// Fingerprint identifies everything a verdict under scope depends on: the
// policy file's digest, every builder's name and key ids (key files are
// outside the policy file), the revoked key ids and the scope's settings.
// Any change to the policy, its keys or its revocations changes it, and
// ledger entries recorded under the old one stop matching.
//
// With a nil scope it identifies the whole policy: what a provenance
// record stores as its policy digest, and what the provenance walk
// compares below maxDepth ("made under this same policy").
func (p *Policy) Fingerprint(scope *Scope) string {
	h := sha256.New()
	field := func(parts ...string) {
		for _, s := range parts {
			var n [binary.MaxVarintLen64]byte
			h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
			h.Write([]byte(s))
		}
	}
	field("trustcache ledger fingerprint v1", p.Digest, strconv.Itoa(p.Version))
	for _, b := range p.Builders {
		field("builder", b.Name)
		for _, k := range b.Keys {
			field("key", k.ID)
		}
	}
	revoked := slices.Clone(p.Revoked)
	sort.Strings(revoked)
	for _, id := range revoked {
		field("revoked", id)
	}
	if scope != nil {
		field("scope")
		field(scope.Repositories...)
		field("builders")
		field(scope.Builders...)
		field("threshold", strconv.Itoa(scope.Threshold), "level", string(scope.Level),
			"maxAge", scope.MaxAge.String(), "acceptUnboundBundles", strconv.FormatBool(scope.AcceptUnboundBundles))
		names := make([]string, 0, len(scope.Annotations))
		for k := range scope.Annotations {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			field("annotation", k, scope.Annotations[k])
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
