package depcheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// sourceFiles parses the non-test Go files of dir (relative to this
// package).
func sourceFiles(t *testing.T, dir string) (*token.FileSet, map[string]*ast.File) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", dir, "*.go"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = f
	}
	return fset, files
}

// TestEnvironmentInjected: the commands read the process environment and
// docker/cli's global config directory in plugin/env.go only (Env, built
// once by the root command); policy discovery (internal/policyfile) and
// the build and bake pipeline (internal/app/pipeline) not at all: they are
// given them.
func TestEnvironmentInjected(t *testing.T) {
	for _, dir := range []string{"plugin", "internal/policyfile", "internal/app/pipeline"} {
		fset, files := sourceFiles(t, dir)
		for path, f := range files {
			if dir == "plugin" && filepath.Base(path) == "env.go" {
				continue
			}
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				x, ok := sel.X.(*ast.Ident)
				if !ok {
					return true
				}
				switch name := x.Name + "." + sel.Sel.Name; name {
				case "os.Getenv", "os.LookupEnv", "config.Dir":
					t.Errorf("%s: %s: read it through Env (plugin/env.go)", fset.Position(sel.Pos()), name)
				}
				return true
			})
		}
	}
}

// TestThinCommands: no function in plugin/ is longer than 60 lines; the
// command layer turns flags into options, calls a library and renders.
// build and bake are adapters of one pipeline (internal/app/pipeline).
func TestThinCommands(t *testing.T) {
	const limit = 60
	fset, files := sourceFiles(t, "plugin")
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			if n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1; n > limit {
				t.Errorf("%s: %s is %d lines; split it by step (at most %d)", fset.Position(fd.Pos()), fd.Name.Name, n, limit)
			}
		}
	}
}
