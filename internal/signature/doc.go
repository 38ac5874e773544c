// Package signature is the wire format trustcache shares with cosign and
// sigstore: what is signed and where signatures live in the registry.
//
//   - payload.go: the simple-signing payload (the digest it names and the
//     annotations it carries).
//   - legacy.go: the "sha256-<hex>.sig" tag scheme that carries payloads and
//     their signatures as layers of one manifest: reading and appending.
//   - bundle.go, referrers.go: sigstore bundles (a DSSE envelope over an
//     in-toto statement) attached as OCI 1.1 referrers, or under the
//     referrers tag fallback: reading and appending.
//   - inline.go: payloads and bundles embedded in their descriptors (data),
//     used only when they are exactly the bytes the digest names.
//   - sign.go: Signer, which signs a digest and attaches the signature in
//     either format.
//   - attestations.go, attest.go: attestations (a signed in-toto statement
//     of another predicate type, such as trustcache's provenance record)
//     read from and attached to their subjects as referrers.
package signature
