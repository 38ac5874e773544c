// Package trustpolicy is the trust policy model: the policy file's schema,
// its parser (every problem with file, line and field), and the questions
// a verifier asks of a loaded policy — which scope a repository falls in,
// which builders and keys it allows, which keys are revoked, which cache
// types pass unsigned, which frontends may run, its fingerprint. It reads
// files (the policy, its keys, its trusted root) and never the network:
// the verifier (package verify) does the registry work.
package trustpolicy
