package depcheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// deps returns, for every package matching pattern, the package and its
// non-test imports, transitively: one "pkg imp imp …" per package reached.
func deps(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", pattern).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pattern, err, out)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			m[f[0]] = f[1:]
		}
	}
	return m
}

// under reports whether pkg is prefix or a package below it.
func under(pkg, prefix string) bool {
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

// TestVerifyImportsNoBuildxParser: the verifier reads a provenance
// record's cache spec with internal/cachespec (the grammar of one
// --cache-from value), not with internal/buildargs, the parser of
// buildx's whole command line.
func TestVerifyImportsNoBuildxParser(t *testing.T) {
	for pkg := range deps(t, module+"/verify/...") {
		if under(pkg, module+"/internal/buildargs") {
			t.Errorf("verify/... reaches %s; the verifier must not import the buildx argument parser (use internal/cachespec)", pkg)
		}
	}
}

// TestPolicyImportsNoRegistryCode: the policy model (verify/trustpolicy)
// parses and matches a file; it reaches no registry client (ggcr's remote
// packages, internal/registry), no signature reader (internal/signature),
// and none of the module's packages it reaches imports net/http. (The
// trusted root's parser, sigstore-go's pkg/root, links go-tuf, whose
// fetcher imports net/http; no code of the policy calls it.)
func TestPolicyImportsNoRegistryCode(t *testing.T) {
	const policy = module + "/verify/trustpolicy"
	all := deps(t, policy)
	if _, ok := all[policy]; !ok {
		t.Fatalf("%s is not in its own dependency list", policy)
	}
	forbidden := []string{
		"github.com/google/go-containerregistry/pkg/v1/remote",
		"github.com/google/go-containerregistry/pkg/registry",
		module + "/internal/registry",
		module + "/internal/signature",
		module + "/verify", // exactly: the verifier sits above the model
	}
	for pkg, imps := range all {
		for _, f := range forbidden {
			if pkg == f || (f != module+"/verify" && under(pkg, f)) {
				t.Errorf("%s reaches %s; the policy model must not import registry code", policy, pkg)
			}
		}
		if !under(pkg, module) {
			continue
		}
		for _, imp := range imps {
			if under(imp, "net/http") {
				t.Errorf("%s reaches %s, which imports %s; the policy model makes no requests", policy, pkg, imp)
			}
		}
	}
}

// publicPackages are the module's libraries (verify is a public library,
// as go-containerregistry's packages are): their exported API names only
// types an outside caller can name.
var publicPackages = []string{"verify", "verify/trustpolicy", "verify/decision", "verify/provenance", "keys"}

// TestPublicAPINamesNoInternalTypes: no exported function, method, type,
// field, variable or constant of a public package has a type from the
// module's internal/ packages, which no caller outside the module can
// import (a value of such a type could be received but not named, a
// parameter of one not passed). Unexported fields and values are not
// looked at.
func TestPublicAPINamesNoInternalTypes(t *testing.T) {
	for _, rel := range publicPackages {
		dir := filepath.Join("..", "..", filepath.FromSlash(rel))
		pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
		if err != nil {
			t.Fatalf("parsing %s: %v", rel, err)
		}
		for _, pkg := range pkgs {
			for fname, f := range pkg.Files {
				internal := map[string]string{} // import name → path, for the module's internal packages
				for _, imp := range f.Imports {
					p, _ := strconv.Unquote(imp.Path.Value)
					if !strings.HasPrefix(p, module+"/internal/") {
						continue
					}
					n := path.Base(p)
					if imp.Name != nil {
						n = imp.Name.Name
					}
					internal[n] = p
				}
				if len(internal) == 0 {
					continue
				}
				for _, where := range exportedTypeExprs(f) {
					ast.Inspect(where.expr, func(n ast.Node) bool {
						if sel, ok := n.(*ast.SelectorExpr); ok {
							if id, ok := sel.X.(*ast.Ident); ok && internal[id.Name] != "" {
								t.Errorf("%s (%s): %s uses %s.%s from %s, which no caller outside the module can name", rel, filepath.Base(fname), where.what, id.Name, sel.Sel.Name, internal[id.Name])
							}
						}
						return true
					})
				}
			}
		}
	}
}

type typeExpr struct {
	what string
	expr ast.Expr
}

// exportedTypeExprs returns the type expressions of f's exported API:
// exported functions and methods of exported types (signatures), exported
// types (their exported fields and embedded types, methods of interfaces,
// the right side of an alias), and the declared types of exported
// variables and constants.
func exportedTypeExprs(f *ast.File) []typeExpr {
	var out []typeExpr
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() {
				continue
			}
			what := d.Name.Name
			if d.Recv != nil && len(d.Recv.List) == 1 {
				recv := d.Recv.List[0].Type
				if s, ok := recv.(*ast.StarExpr); ok {
					recv = s.X
				}
				if ix, ok := recv.(*ast.IndexExpr); ok {
					recv = ix.X
				}
				id, ok := recv.(*ast.Ident)
				if !ok || !id.IsExported() {
					continue
				}
				what = id.Name + "." + what
			}
			out = append(out, typeExpr{what, d.Type})
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					if !s.Name.IsExported() {
						continue
					}
					st, ok := s.Type.(*ast.StructType)
					if !ok {
						out = append(out, typeExpr{s.Name.Name, s.Type})
						continue
					}
					for _, fl := range st.Fields.List {
						if len(fl.Names) == 0 { // embedded: exported when its type name is
							out = append(out, typeExpr{s.Name.Name + " (embedded)", fl.Type})
							continue
						}
						for _, n := range fl.Names {
							if n.IsExported() {
								out = append(out, typeExpr{s.Name.Name + "." + n.Name, fl.Type})
							}
						}
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.IsExported() && s.Type != nil {
							out = append(out, typeExpr{n.Name, s.Type})
						}
					}
				}
			}
		}
	}
	return out
}
