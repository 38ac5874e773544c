// Package endpoint serves BuildKit, over the registry API, only content
// whose digest trustcache verified: the verified content endpoint of one
// build.
//
// BuildKit v0.34 reads a registry cache's manifest and config with
// content.ReadBlob, without checking the bytes against the digest it was
// told to import; a registry that lies (or a man in the middle of plain
// HTTP) can serve other bytes for a pinned, verified digest. For the length
// of one build trustcache runs a Server, registers every verified cache with
// Add, and hands BuildKit the reference Add returns instead of the
// registry's. The Server fetches from the real registry with the user's
// credentials and passes on only bytes it has checked:
//
//   - Manifests: only a registered digest, or a manifest a verified index
//     lists, and only by digest (a tag is unknown). The whole manifest is
//     fetched (at most registry.MaxResponseBody bytes) and hashed before a
//     byte is sent; verified manifests are kept in memory.
//   - Blobs: only digests a verified manifest of the same name refers to
//     (config, layers, index entries). Blobs of up to SmallBlob bytes are
//     buffered and checked before a byte is sent. Larger ones are streamed
//     with the descriptor's Content-Length, hashed on the way, and the
//     last HoldBack bytes are held back until the whole upstream body has
//     been read and its length and digest match; on a mismatch the
//     response is aborted, so the client never receives a complete wrong
//     blob. A request holds a fixed amount of memory, whatever the blob's
//     size. HEAD is answered from the descriptor. A Range header is
//     ignored: the answer is the whole blob with status 200, which
//     containerd's fetcher accepts (it discards the bytes before the
//     offset it asked for); no Accept-Ranges header is sent.
//   - Nothing else: GET and HEAD of /v2/ answer 200 {}; every other path
//     and method is refused with a registry-style JSON error. The client's
//     headers are never sent upstream and the registry's headers never
//     reach the client (only content type, length and digest, which the
//     Server sets itself).
//   - Not an open proxy: the Server listens on 127.0.0.1 only, and every
//     name it serves starts with a random 128-bit token of this Server (or
//     of one of its Scopes, each build's when one Server serves many, which
//     ends with Scope.Close); a request without it is answered 404 before
//     anything upstream is contacted. The token is no secret from other
//     local users when the reference is on a command line (a build's
//     docker-buildx): a build's Server also requires a credential
//     (RequireCredential), and answers 401 to every request without it.
//
// What was refused and why is recorded as a Problem, for the build's trust
// report: a Mismatch (the registry served other content than the digest
// names: an attack or corruption), NotFound, or Unavailable (the registry
// could not be asked: network, 5xx, timeouts). None of them ever lets
// unchecked bytes through; each costs the build that cache.
package endpoint
