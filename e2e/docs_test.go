//go:build e2e

package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A shell block of the documentation is preceded by one of two markers:
//
//	<!-- docs-test: NAME -->        TestDocs runs the block, as written, on the real stack
//	<!-- docs-untested: REASON -->  it is not run, and REASON says why (which test covers it)
//
// A block with neither fails TestDocs, so every command the docs show is either run or
// knowingly left out.
var (
	docsTestMarker     = regexp.MustCompile(`^<!-- docs-test: ([a-z0-9-]+) -->$`)
	docsUntestedMarker = regexp.MustCompile(`^<!-- docs-untested: (.+) -->$`)
)

// docBlock is one ```sh block of a Markdown file.
type docBlock struct {
	file   string // path relative to the repository root
	line   int    // line of the opening fence
	name   string // from docs-test; "" when untested
	reason string // from docs-untested
	script string
}

// docBlocks reads every ```sh block of README.md and docs/*.md.
func docBlocks(t *testing.T) []docBlock {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join("..", "README.md")}, files...)
	var blocks []docBlock
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(filepath.ToSlash(path), "../")
		sc := bufio.NewScanner(f)
		var prev string // the last non-empty line before a fence
		var cur *docBlock
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			switch {
			case cur != nil && strings.HasPrefix(line, "```"):
				blocks = append(blocks, *cur)
				cur = nil
			case cur != nil:
				cur.script += line + "\n"
			case line == "```sh":
				cur = &docBlock{file: rel, line: n}
				if m := docsTestMarker.FindStringSubmatch(prev); m != nil {
					cur.name = m[1]
				} else if m := docsUntestedMarker.FindStringSubmatch(prev); m != nil {
					cur.reason = m[1]
				}
			}
			if strings.TrimSpace(line) != "" {
				prev = strings.TrimSpace(line)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return blocks
}

// TestDocs runs every shell block of README.md and docs/ marked docs-test, each as one bash
// script (errexit, pipefail) in a fresh directory, with the installed plugin, buildx and the
// e2e builder in its docker config, and fails on the first command that fails. The blocks name
// what `make demo` sets up (the registry on 127.0.0.1:5000, the builder trustcache-e2e, the
// base image 127.0.0.1:5000/e2e/busybox:latest) literally, as a reader types them.
func TestDocs(t *testing.T) {
	blocks := docBlocks(t)
	var run int
	for _, b := range blocks {
		if b.name == "" && b.reason == "" {
			t.Errorf("%s:%d: a sh block with neither <!-- docs-test: NAME --> nor <!-- docs-untested: REASON --> before it", b.file, b.line)
		}
		if b.name != "" {
			run++
		}
	}
	if run == 0 {
		t.Fatal("no docs-test block found: the README's walkthrough at least must be run")
	}
	if cfg.registry != "127.0.0.1:5000" || cfg.builder != "trustcache-e2e" || cfg.baseImage != "127.0.0.1:5000/e2e/busybox:latest" {
		t.Fatalf("the docs name make demo's registry 127.0.0.1:5000, builder trustcache-e2e and base image; this e2e env has %s, %s, %s",
			cfg.registry, cfg.builder, cfg.baseImage)
	}
	for _, b := range blocks {
		if b.name == "" {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t)
			work := filepath.Join(e.dir, "work")
			if err := os.MkdirAll(work, 0o755); err != nil {
				t.Fatal(err)
			}
			// The docker CLI the e2e env uses, first on PATH, as `docker` in the docs.
			e.setenv("PATH", filepath.Dir(cfg.docker)+string(os.PathListSeparator)+os.Getenv("PATH"))
			cmd := exec.Command("bash", "-euo", "pipefail", "-c", b.script)
			cmd.Dir = work
			cmd.Env = e.environ(deadProxy)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s:%d (docs-test %s): %v\n%s", b.file, b.line, b.name, err, out)
			}
			t.Logf("%s:%d (docs-test %s):\n%s", b.file, b.line, b.name, out)
		})
	}
}
