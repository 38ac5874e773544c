package trustpolicy

// starterPolicy is the file `docker trustcache policy init` writes. It
// parses once keys/ci-main.pub exists next to it (a test checks that).
const starterPolicy = `# docker trustcache policy: which builders may sign the build caches this
# project reuses. Check it with: docker trustcache policy lint
version: 1

# Builders are who may sign caches: CI on a protected branch, a release job.
# key: a PEM public key file (relative to this file), inline PEM, or env://VAR.
# Make one with: docker trustcache keys generate --name ci-main --dir keys
# To rotate a key, give keys: [old.pub, new.pub] until caches are re-signed.
builders:
  - name: ci-main
    key: keys/ci-main.pub

# Scopes say which builders are trusted for which cache repositories.
# "*" matches within one path segment, "**" across segments. The most
# specific matching pattern wins; a repository that no scope matches is
# untrusted.
scopes:
  - repositories: ["registry.example.com/team/*-cache"]
    builders: [ci-main]
    threshold: 1      # how many distinct builders above must have signed
    level: strict     # strict: only verified caches are used
                      # audit: verify and report, use the cache anyway
                      # skip: do not verify
    onUntrusted: drop # drop: build without the cache | fail: fail the build
    maxAge: 30d       # signatures older than this do not count
    annotations:      # signed annotations whose values must match (globs):
      ref: refs/heads/main  # only caches signed by a build of main

# Key ids that are never accepted, whichever builder lists them
# (docker trustcache keys id FILE prints a key's id).
revoked: []

# Cache types that registry signatures cannot cover and that builds may keep
# unverified: local, gha, s3, azblob. None by default.
allowUnsignedTypes: []

# What docker trustcache sign writes: legacy (cosign v2 .sig tag) or
# bundle (sigstore bundle as an OCI 1.1 referrer, cosign v3).
signatureFormat: legacy

# Verified caches reach BuildKit through a local endpoint that serves only
# bytes whose digests trustcache checked. A builder whose BuildKit cannot
# reach this host's loopback (docker-container, kubernetes, a remote host)
# gets the cache pinned by digest only, with a warning; true refuses to
# build instead.
requireVerifiedBytes: false
`

// StarterKeyRef is the key file the starter policy names, relative
// to the policy file.
const StarterKeyRef = "keys/ci-main.pub"

// Starter returns a commented starter policy for
// `docker trustcache policy init`. Its one builder, ci-main, reads its key
// from StarterKeyRef next to the policy file.
func Starter() []byte { return []byte(starterPolicy) }
