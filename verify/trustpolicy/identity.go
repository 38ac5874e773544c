package trustpolicy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"gopkg.in/yaml.v3"
)

// Keyless builders: a builder may be a CI identity that a sigstore
// certificate authority (Fulcio) certified, instead of (or as well as) a
// key. The policy names the OIDC issuer, the certificate's subject (the
// SAN: for GitHub Actions the workflow file URL at a ref) and, optionally,
// any of the other claims Fulcio copies from the CI's OIDC token into the
// certificate. keyless.go verifies the signature, the certificate chain and
// the verified time with sigstore-go; this file matches the verified
// certificate against the policy.

// Which verified time a keyless signature needs (Identity.RequireTimestamp).
// Only timestamp authorities give verified times today: transparency log
// entries are not verified (keyless.go), and a policy asking for one is
// refused rather than never met.
const (
	// TimestampAny accepts any verified time (at least one). It is the
	// default.
	TimestampAny = "any"
	// TimestampTSA requires an RFC 3161 timestamp of a timestamp authority
	// in the trusted root.
	TimestampTSA = "tsa"
	// TimestampTlog would require a transparency log entry; refused.
	TimestampTlog = "tlog"
)

// Identity is the CI identity of a keyless builder. Every field set must
// match the verified certificate.
type Identity struct {
	// Issuer is the OIDC issuer, compared exactly (Fulcio's issuer
	// extension, 1.3.6.1.4.1.57264.1.8 or .1.1).
	Issuer string
	// Subject is a glob the certificate's subject alternative name must
	// match (doublestar syntax, as annotations: "*" stays within a "/"
	// segment, "**" crosses them).
	Subject string
	// Claims maps a claim name (see IdentityClaims) to a glob its value in
	// the certificate must match. A claim the policy names must be in the
	// certificate.
	Claims map[string]string
	// RequireTimestamp is TimestampAny (default) or TimestampTSA.
	RequireTimestamp string
	// Line is the line of the identity in the policy file.
	Line int
	// Field is its field path, such as builders[0].identity, for messages.
	Field string
}

// IdentityClaim is a certificate claim a policy identity may match.
type IdentityClaim struct {
	// Name is the policy field name.
	Name string
	// OID is Fulcio's certificate extension.
	OID string
	// GitHub and GitLab name the OIDC token claim Fulcio fills it from.
	GitHub, GitLab string
	get            func(*certificate.Summary) string
}

// IdentityClaims are the claims an identity may match, besides issuer and
// subject, in the order lint and explain list them. The names follow
// GitHub's token claims.
var IdentityClaims = []IdentityClaim{
	{"repository", "1.3.6.1.4.1.57264.1.12", "https://github.com/ + repository", "project URL", func(s *certificate.Summary) string { return s.SourceRepositoryURI }},
	{"repositoryID", "1.3.6.1.4.1.57264.1.15", "repository_id", "project_id", func(s *certificate.Summary) string { return s.SourceRepositoryIdentifier }},
	{"repositoryOwner", "1.3.6.1.4.1.57264.1.16", "https://github.com/ + repository_owner", "namespace URL", func(s *certificate.Summary) string { return s.SourceRepositoryOwnerURI }},
	{"repositoryOwnerID", "1.3.6.1.4.1.57264.1.17", "repository_owner_id", "namespace_id", func(s *certificate.Summary) string { return s.SourceRepositoryOwnerIdentifier }},
	{"repositoryVisibility", "1.3.6.1.4.1.57264.1.22", "repository_visibility", "project_visibility", func(s *certificate.Summary) string { return s.SourceRepositoryVisibilityAtSigning }},
	{"ref", "1.3.6.1.4.1.57264.1.14", "ref", "refs/heads/ or refs/tags/ + ref", func(s *certificate.Summary) string { return s.SourceRepositoryRef }},
	{"sha", "1.3.6.1.4.1.57264.1.13", "sha", "sha", func(s *certificate.Summary) string { return s.SourceRepositoryDigest }},
	{"workflowRef", "1.3.6.1.4.1.57264.1.18", "https://github.com/ + workflow_ref", "https:// + ci_config_ref_uri", func(s *certificate.Summary) string { return s.BuildConfigURI }},
	{"workflowSha", "1.3.6.1.4.1.57264.1.19", "workflow_sha", "ci_config_sha", func(s *certificate.Summary) string { return s.BuildConfigDigest }},
	{"jobWorkflowRef", "1.3.6.1.4.1.57264.1.9", "https://github.com/ + job_workflow_ref", "https:// + ci_config_ref_uri", func(s *certificate.Summary) string { return s.BuildSignerURI }},
	{"jobWorkflowSha", "1.3.6.1.4.1.57264.1.10", "job_workflow_sha", "ci_config_sha", func(s *certificate.Summary) string { return s.BuildSignerDigest }},
	{"eventName", "1.3.6.1.4.1.57264.1.20", "event_name", "pipeline_source", func(s *certificate.Summary) string { return s.BuildTrigger }},
	{"runnerEnvironment", "1.3.6.1.4.1.57264.1.11", "runner_environment", "runner_environment", func(s *certificate.Summary) string { return s.RunnerEnvironment }},
	{"runInvocation", "1.3.6.1.4.1.57264.1.21", "run URL (run_id, run_attempt)", "job URL (job_id)", func(s *certificate.Summary) string { return s.RunInvocationURI }},
}

// identityClaim returns the claim named name.
func identityClaim(name string) (IdentityClaim, bool) {
	i := slices.IndexFunc(IdentityClaims, func(c IdentityClaim) bool { return c.Name == name })
	if i < 0 {
		return IdentityClaim{}, false
	}
	return IdentityClaims[i], true
}

// ClaimNames returns the claim names of id, in IdentityClaims order.
func (id *Identity) ClaimNames() []string {
	var out []string
	for _, c := range IdentityClaims {
		if _, ok := id.Claims[c.Name]; ok {
			out = append(out, c.Name)
		}
	}
	return out
}

// match checks a verified certificate summary against the identity; it
// returns "" when everything matches, else the first mismatch.
func (id *Identity) Match(s *certificate.Summary) string {
	if s.Issuer != id.Issuer {
		return fmt.Sprintf("certificate issuer %q is not %q", s.Issuer, id.Issuer)
	}
	if ok, _ := doublestar.Match(id.Subject, s.SubjectAlternativeName); !ok {
		return fmt.Sprintf("certificate subject %q does not match %q", s.SubjectAlternativeName, id.Subject)
	}
	for _, c := range IdentityClaims {
		want, ok := id.Claims[c.Name]
		if !ok {
			continue
		}
		got := c.get(s)
		if got == "" {
			return fmt.Sprintf("certificate has no %s claim (OID %s); the policy requires %q", c.Name, c.OID, want)
		}
		if ok, _ := doublestar.Match(want, got); !ok {
			return fmt.Sprintf("certificate %s %q does not match %q", c.Name, got, want)
		}
	}
	return ""
}

// identityFields are the fields of a builder's identity mapping.
func identityFields() []string {
	out := []string{"issuer", "subject", "requireTimestamp"}
	for _, c := range IdentityClaims {
		out = append(out, c.Name)
	}
	return out
}

// identity reads a builder's identity mapping.
func (ps *parser) identity(f field, path string) *Identity {
	ff := ps.fields(f.value, path, identityFields()...)
	if ff == nil {
		return nil
	}
	id := &Identity{Line: f.key.Line, RequireTimestamp: TimestampAny, Field: path}
	ok := true
	if v, has := ff["issuer"]; !has {
		ps.errorf(f.key, path+".issuer", "missing: an identity names the OIDC issuer, such as https://token.actions.githubusercontent.com")
		ok = false
	} else if s, good := ps.str(v.value, path+".issuer"); good {
		if !strings.Contains(s, "://") {
			ps.errorf(v.value, path+".issuer", "%q is not an issuer URL (compared exactly with the certificate's, such as https://token.actions.githubusercontent.com)", s)
			ok = false
		}
		id.Issuer = s
	} else {
		ok = false
	}
	if v, has := ff["subject"]; !has {
		ps.errorf(f.key, path+".subject", "missing: an identity names the certificate subject (a glob), such as https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main")
		ok = false
	} else if s, good := ps.glob(v, path+".subject"); good {
		id.Subject = s
	} else {
		ok = false
	}
	if v, has := ff["requireTimestamp"]; has {
		if s, good := ps.str(v.value, path+".requireTimestamp"); good {
			switch s {
			case TimestampAny, TimestampTSA:
				id.RequireTimestamp = s
			case TimestampTlog:
				ps.errorf(v.value, path+".requireTimestamp", "%s: transparency log entries are not verified by trustcache (only RFC 3161 timestamps of the trusted root's timestamp authorities are); want %s or %s", s, TimestampTSA, TimestampAny)
				ok = false
			default:
				ps.errorf(v.value, path+".requireTimestamp", "unknown value %q: want %s or %s", s, TimestampAny, TimestampTSA)
				ok = false
			}
		}
	}
	for _, c := range IdentityClaims {
		v, has := ff[c.Name]
		if !has {
			continue
		}
		if s, good := ps.glob(v, path+"."+c.Name); good {
			if id.Claims == nil {
				id.Claims = make(map[string]string)
			}
			id.Claims[c.Name] = s
		} else {
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return id
}

// glob reads a non-empty string that is a valid doublestar glob.
func (ps *parser) glob(f field, path string) (string, bool) {
	s, ok := ps.str(f.value, path)
	if !ok {
		return "", false
	}
	if strings.TrimSpace(s) == "" {
		ps.errorf(f.value, path, "empty: want a value or glob the certificate's must match")
		return "", false
	}
	if !doublestar.ValidatePattern(s) {
		ps.errorf(f.value, path, "invalid glob %q", s)
		return "", false
	}
	return s, true
}

// keylessBuilders checks that a policy with identity builders names a
// trusted root, recording a problem at each identity otherwise.
func (ps *parser) keylessBuilders(p *Policy, root *yaml.Node) {
	if p.TrustedRoot != "" {
		return
	}
	for _, b := range p.Builders {
		if b.Identity != nil {
			ps.errs = append(ps.errs, &Error{File: ps.file, Line: b.Identity.Line, Field: b.Identity.Field,
				Msg: "a keyless builder needs the policy's top-level trustedRoot (a sigstore trusted_root.json, relative to the policy file)"})
		}
	}
}
