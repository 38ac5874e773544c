package trustpolicy

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/docker-trustcache/docker-trustcache/internal/lazyregexp"
)

// dockerHub is the canonical registry name of Docker Hub, as
// go-containerregistry and docker name it.
const dockerHub = name.DefaultRegistry

// pathComponentRE is one path component of a repository name in docker's
// reference grammar.
var pathComponentRE = lazyregexp.New(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// CanonicalRepository returns the canonical name of a repository (no tag or
// digest), the way docker resolves it: lowercased; a first segment that
// has no "." or ":" and is not "localhost" is a path on Docker Hub;
// "docker.io" is written "index.docker.io"; a Docker Hub repository of one
// segment is in "library/". So "x" and "docker.io/x" become
// "index.docker.io/library/x"; "registry.example.com:5000/Team/App" becomes
// "registry.example.com:5000/team/app".
func CanonicalRepository(s string) (string, error) {
	c, err := canonicalRepository(s)
	if err != nil {
		return "", fmt.Errorf("invalid repository %q: %w", s, err)
	}
	return c, nil
}

// canonicalRepository is CanonicalRepository with errors that do not
// repeat s.
func canonicalRepository(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty repository name")
	}
	repo, err := name.NewRepository(strings.ToLower(s))
	if err != nil {
		return "", err
	}
	for _, c := range strings.Split(repo.RepositoryStr(), "/") {
		if !pathComponentRE.MatchString(c) {
			return "", fmt.Errorf("path component %q must be lowercase letters and digits joined by '.', '_', '__' or '-'", c)
		}
	}
	return repo.Name(), nil
}

// canonicalPattern canonicalizes a repository pattern as CanonicalRepository
// does a name. Patterns use only the wildcards "*" (within one path
// segment) and "**" (a whole segment: any number of segments).
//
// The registry host is decided as docker decides it, with two rules for
// wildcards: a pattern starting with a "**" segment matches any registry;
// a wildcard in the first of several segments makes that segment a host
// pattern, which must then contain "." or ":" ("*.example.com/team/*") —
// "*/cache" is refused as ambiguous (Docker Hub organization or host?).
// A pattern of one segment is a Docker Hub official image: "*" means
// "index.docker.io/library/*".
func canonicalPattern(p string) (string, error) {
	switch {
	case p == "":
		return "", errors.New("empty repository pattern")
	case strings.ContainsAny(p, "?[]{}\\"):
		return "", fmt.Errorf("repository pattern %q: only the wildcards * and ** are supported", p)
	case !strings.Contains(p, "*"):
		return CanonicalRepository(p)
	case !doublestar.ValidatePattern(p):
		return "", fmt.Errorf("repository pattern %q is not a valid glob", p)
	}
	lower := strings.ToLower(p)
	segs := strings.Split(lower, "/")
	for _, s := range segs {
		if s == "" {
			return "", fmt.Errorf("repository pattern %q has an empty path segment", p)
		}
		if strings.Contains(s, "**") && s != "**" {
			return "", fmt.Errorf("repository pattern %q: ** must be a whole path segment (like team/**), use * within a segment", p)
		}
	}
	var host string
	path := segs
	switch first := segs[0]; {
	case first == "**":
		// Any registry.
	case len(segs) == 1:
		host, path = dockerHub, []string{"library", first}
	case strings.Contains(first, "*"):
		if !strings.ContainsAny(first, ".:") {
			return "", fmt.Errorf("repository pattern %q: a wildcard in the registry part must match host names (like *.example.com); for Docker Hub write docker.io/%s", p, strings.Join(segs, "/"))
		}
		host, path = first, segs[1:]
	case first == "localhost" || strings.ContainsAny(first, ".:"):
		host, path = first, segs[1:]
		if host == "docker.io" {
			host = dockerHub
		}
	default:
		host = dockerHub
	}
	if host == dockerHub && len(path) == 1 && path[0] != "**" {
		path = []string{"library", path[0]}
	}
	c := strings.Join(path, "/")
	if host != "" {
		c = host + "/" + c
	}
	// The literal parts must be able to form a repository name: check the
	// pattern with every wildcard replaced by a digit (a digit fits a host,
	// a port and a path component alike).
	example := strings.ReplaceAll(strings.ReplaceAll(c, "**", "0"), "*", "0")
	if host == "" {
		example = "example.com/" + example
	}
	if _, err := canonicalRepository(example); err != nil {
		return "", fmt.Errorf("repository pattern %q cannot match a valid repository name: %w", p, err)
	}
	return c, nil
}

// Candidate is a scope pattern that matches a repository.
type Candidate struct {
	// Scope is the scope the pattern belongs to.
	Scope *Scope
	// ScopeIndex is the index of Scope in Policy.Scopes.
	ScopeIndex int
	// Pattern is the pattern as written in the policy file.
	Pattern string
	// Canonical is the pattern after canonicalization.
	Canonical string

	// patternIndex is the index of Pattern in Scope.Repositories.
	patternIndex int
}

// Candidates returns every scope pattern that matches repository, the most
// specific first; the first one's scope is the one that applies. It fails
// only when repository is not a valid repository name.
//
// Specificity, so that the outcome never depends on luck:
//  1. an exact pattern (no wildcard) beats any glob;
//  2. among globs, more literal (non-wildcard) characters win
//     ("reg/team/app-*" beats "reg/team/*" beats "reg/**");
//  3. then fewer "**" segments;
//  4. then fewer "*" wildcards;
//  5. then the pattern written earlier in the file.
//
// All comparisons use the canonical forms.
func (p *Policy) Candidates(repository string) ([]Candidate, error) {
	repo, err := CanonicalRepository(repository)
	if err != nil {
		return nil, err
	}
	var out []Candidate
	for i := range p.Scopes {
		s := &p.Scopes[i]
		for j, pat := range s.Repositories {
			c, err := canonicalPattern(pat)
			if err != nil {
				// Parse refuses such a pattern; one in a Policy
				// built by hand matches nothing.
				continue
			}
			if ok, _ := doublestar.Match(c, repo); ok {
				out = append(out, Candidate{Scope: s, ScopeIndex: i, Pattern: pat, Canonical: c, patternIndex: j})
			}
		}
	}
	slices.SortStableFunc(out, compareSpecificity)
	return out, nil
}

// compareSpecificity orders a before b when a is more specific (see
// Candidates).
func compareSpecificity(a, b Candidate) int {
	ka, kb := specificity(a.Canonical), specificity(b.Canonical)
	return cmp.Or(
		cmp.Compare(kb.exact, ka.exact),
		cmp.Compare(kb.literal, ka.literal),
		cmp.Compare(ka.doubles, kb.doubles),
		cmp.Compare(ka.singles, kb.singles),
		cmp.Compare(a.ScopeIndex, b.ScopeIndex),
		cmp.Compare(a.patternIndex, b.patternIndex),
	)
}

type specificityKey struct {
	exact            int // 1 for a pattern without wildcards
	literal          int // non-wildcard characters
	doubles, singles int // "**" segments, other "*"
}

func specificity(c string) specificityKey {
	doubles := strings.Count(c, "**")
	singles := strings.Count(c, "*") - 2*doubles
	k := specificityKey{
		literal: len(c) - doubles*2 - singles,
		doubles: doubles,
		singles: singles,
	}
	if doubles+singles == 0 {
		k.exact = 1
	}
	return k
}

// Match returns the scope that applies to repository: the scope of the most
// specific matching pattern (see Candidates). false means no scope matches
// (or repository is not a valid name): the repository is untrusted.
func (p *Policy) Match(repository string) (*Scope, bool) {
	c, err := p.Candidates(repository)
	if err != nil || len(c) == 0 {
		return nil, false
	}
	return c[0].Scope, true
}

// MatchExplain is Match for `policy explain`: it also returns the pattern
// that won (as written in the file) and the other patterns that matched,
// the more specific first. matched is nil when no scope matches.
func (p *Policy) MatchExplain(repository string) (matched *Scope, pattern string, candidates []string) {
	c, err := p.Candidates(repository)
	if err != nil || len(c) == 0 {
		return nil, "", nil
	}
	for _, o := range c[1:] {
		candidates = append(candidates, o.Pattern)
	}
	return c[0].Scope, c[0].Pattern, candidates
}
