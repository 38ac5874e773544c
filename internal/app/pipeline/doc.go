// Package pipeline is one concern: a build or bake run under the trust
// policy, from the caches decided to the signed, recorded exports and the
// trust report. "docker trustcache build" is a run of one target, "bake" a
// run of the bake's targets (as buildx runs build as a one-target bake):
// both commands are adapters onto Run.
//
// A run goes through its stages in order: the --sign guard (New), every
// cache-from verified once and decided by verify/decision, the signing
// key loaded (a wrong password costs no build), the verified content
// endpoint for the caches used (or the digest pin, on a builder that
// cannot reach it), buildx (run by the caller's Buildx), the exports
// signed and the provenance record attached, and the report: a summary on
// stderr and, with --trust-report, JSON. A run that stops early says why
// in the same summary and report, whichever stage stopped it.
//
// Everything a run reads from outside is given to it as a value: the
// policy, the verifier, the options, the environment (a lookup function),
// stderr, the registry credentials, buildx and the signer. It reads no
// process environment and no global configuration.
package pipeline
