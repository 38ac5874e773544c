// Package recordsigned carries one operation of the verifier that is the
// module's, not verify's public API: recording in the ledger a digest this
// host has just signed, checked against the policy on the signatures it
// attached (`sign`, `build --sign`). Those signatures are in the wire
// format (internal/signature), which no caller outside the module can
// name, so the operation is not exported by verify; package verify sets
// Func when it is linked (verify/record.go), and only the module can
// import this package.
package recordsigned

import (
	"context"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
)

// Func checks sigs, attached to ref (REPO@DIGEST) here, against the
// verifier's policy by the rules a verification applies to signatures
// read from the registry, and records a digest they make trusted in the
// verifier's ledger. v is a *verify.Verifier and res a *verify.Result;
// err is a *verify.ReferenceError for a ref that is not REPO@DIGEST.
// Nothing is fetched. Set by package verify, which every caller imports.
var Func func(ctx context.Context, v any, ref string, sigs []signature.Signature) (res any, err error)
