// Package keyless signs without a long-lived key: it finds the CI's OIDC
// identity token (FindTokenSource, ParseClaims), obtains a short-lived
// Fulcio certificate for an ephemeral key, and timestamps each signature at
// an RFC 3161 timestamp authority (Signer), with the service URLs from a
// sigstore signing config (LoadSigningConfig) or the public-good instance.
// Its one concern is producing keyless signing material; verifying it
// (certificate chains, identities, timestamps) belongs to verify.
package keyless
