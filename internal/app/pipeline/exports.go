package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
)

// Export is one digest a run exported: a target's registry cache manifest
// or its pushed image, in one repository.
type Export struct {
	Repo   name.Repository
	Digest v1.Hash
	Kind   string // "cache" or "image"
}

// Reference returns REPO@DIGEST.
func (e Export) Reference() string { return e.Repo.Name() + "@" + e.Digest.String() }

// exportPlan is what a run's targets export to a registry, as far as
// their flags or definition say before the build: each target's one
// registry cache and whether it pushes. The digests come after, from
// buildx's metadata file — never from a tag resolved afterwards, which
// someone else may have moved meanwhile.
type exportPlan struct {
	bake    bool // the metadata file is a bake's, keyed by target
	targets []plannedExport
}

// plannedExport is what one target exports.
type plannedExport struct {
	name      string
	cacheRepo *name.Repository // its one registry cache-to, if any
	cacheTag  string           // that ref's tag ("" for none)
	pushes    bool
}

// planExports reads what targets export. Signing (--sign), every target
// has at most one registry cache (buildx reports one cache digest per
// target) and something is exported, or it is a *UsageError; otherwise a
// target with several registry caches has its cache left out (which one
// the digest is of is not said).
func planExports(targets []Target, signing bool) (*exportPlan, error) {
	plan := &exportPlan{bake: len(targets) != 1 || targets[0].Name != ""}
	for _, t := range targets {
		pe, err := planTarget(t, signing)
		if err != nil {
			return nil, err
		}
		if pe.cacheRepo != nil || pe.pushes {
			plan.targets = append(plan.targets, pe)
		}
	}
	if signing && plan.empty() {
		if plan.bake {
			return nil, usagef("--sign: this bake exports nothing to sign; give a target cache-to type=registry,ref=… or push its image (--push)")
		}
		return nil, usagef("--sign: this build exports nothing to sign; add --cache-to type=registry,ref=… or --push (with inline cache)")
	}
	return plan, nil
}

// planTarget is planExports for one target.
func planTarget(t Target, signing bool) (plannedExport, error) {
	pe := plannedExport{name: t.Name, pushes: t.Pushes}
	var refs []string
	for _, spec := range t.CacheTo {
		if spec.Type == "registry" {
			refs = append(refs, spec.Ref())
		}
	}
	switch {
	case len(refs) > 1 && signing && t.Name == "":
		return pe, usagef("--sign signs one registry --cache-to per build (the build reports one cache digest); got %d", len(refs))
	case len(refs) > 1 && signing:
		return pe, usagef("--sign signs one registry cache-to per target (bake reports one cache digest per target); target %s has %d", t.Name, len(refs))
	case len(refs) != 1:
		return pe, nil
	}
	r, err := name.ParseReference(refs[0])
	switch {
	case err != nil && !signing:
		return pe, nil
	case err != nil && t.Name == "":
		return pe, usagef("--cache-to ref %q: %w", refs[0], err)
	case err != nil:
		return pe, usagef("target %s: cache-to ref %q: %w", t.Name, refs[0], err)
	}
	repo := r.Context()
	pe.cacheRepo, pe.cacheTag = &repo, tagOf(r)
	return pe, nil
}

// empty says whether the run exports nothing to a registry.
func (p *exportPlan) empty() bool { return len(p.targets) == 0 }

// tempMetadataFile returns a --metadata-file for buildx to write when the
// user gave none, and what removes it.
func tempMetadataFile() (string, func(), error) {
	dir, err := os.MkdirTemp("", "trustcache-build-")
	if err != nil {
		return "", nil, err
	}
	return filepath.Join(dir, "metadata.json"), func() { os.RemoveAll(dir) }, nil
}

// exported is one digest exported and the tags it was exported under:
// the cache-to ref's, or each pushed image name's in its repository; [""]
// when none.
type exported struct {
	Export
	tags []string
}

// targetExports is what one target reported it exported, or why that
// could not be read.
type targetExports struct {
	name    string
	exports []exported
	err     error
}

// read returns what each planned target reported it exported in buildx's
// metadata file mdFile. The error is the file's: one target's is in its
// entry.
func (p *exportPlan) read(mdFile string) ([]targetExports, error) {
	if p.empty() {
		return nil, nil
	}
	if !p.bake {
		md, err := buildargs.ReadMetadata(mdFile)
		if err != nil {
			return nil, err
		}
		exp, err := p.targets[0].exports(md)
		return []targetExports{{exports: exp, err: err}}, nil
	}
	bmd, err := buildargs.ReadBakeMetadata(mdFile)
	if err != nil {
		return nil, err
	}
	out := make([]targetExports, 0, len(p.targets))
	for _, t := range p.targets {
		te := targetExports{name: t.name}
		md, ok, err := bmd.Target(t.name)
		switch {
		case !ok:
			te.err = fmt.Errorf("target %s: the bake metadata reports nothing for it; not signing by tag", t.name)
		case err != nil:
			te.err = fmt.Errorf("target %s: %w", t.name, err)
		default:
			te.exports, te.err = t.exports(md)
			if te.err != nil {
				te.err = fmt.Errorf("target %s: %w", t.name, te.err)
			}
		}
		out = append(out, te)
	}
	return out, nil
}

// exports returns the cache manifest and pushed images md reports, as the
// build reported them: never a tag resolved afterwards.
func (t plannedExport) exports(md buildargs.Metadata) ([]exported, error) {
	var out []exported
	if t.cacheRepo != nil {
		d, err := md.CacheDigest()
		if err != nil {
			return nil, fmt.Errorf("the build did not report the digest of the cache it exported to %s (%v); not signing by tag, which may have moved", t.cacheRepo.Name(), err)
		}
		out = append(out, exported{Export{*t.cacheRepo, d, "cache"}, []string{t.cacheTag}})
	}
	if !t.pushes {
		return out, nil
	}
	d, err := v1.NewHash(md.ImageDigest)
	if err != nil || md.ImageName == "" {
		return nil, fmt.Errorf("the build did not report the digest and name of the image it pushed (containerimage.digest, image.name); not signing by tag")
	}
	tags := map[string][]string{} // repository → its tags, in order
	var repos []name.Repository
	for _, n := range strings.Split(md.ImageName, ",") {
		r, err := name.ParseReference(strings.TrimSpace(n))
		if err != nil {
			return nil, fmt.Errorf("image name %q reported by the build: %w", n, err)
		}
		repo := r.Context().Name()
		if _, ok := tags[repo]; !ok {
			tags[repo] = nil
			repos = append(repos, r.Context())
		}
		if tag := tagOf(r); tag != "" && !slices.Contains(tags[repo], tag) {
			tags[repo] = append(tags[repo], tag)
		}
	}
	for _, repo := range repos {
		ts := tags[repo.Name()]
		if len(ts) == 0 {
			ts = []string{""}
		}
		out = append(out, exported{Export{repo, d, "image"}, ts})
	}
	return out, nil
}

// tagOf returns the tag r names, "" for a digest reference.
func tagOf(r name.Reference) string {
	if t, ok := r.(name.Tag); ok {
		return t.TagStr()
	}
	return ""
}
