package trustpolicy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/docker-trustcache/docker-trustcache/internal/lazyregexp"
)

// The policy is decoded from a yaml.Node tree rather than into structs, so
// that every problem can name its line, column and field, and so that all
// problems are reported at once.

// yamlLineRE finds the line in a yaml.v3 syntax error.
var yamlLineRE = lazyregexp.New(`^yaml: line (\d+): (.*)$`)

// parser collects the problems of one policy file.
type parser struct {
	file    string
	baseDir string
	errs    []*Error
}

// errorf records a problem at node n (nil: no position).
func (ps *parser) errorf(n *yaml.Node, field, format string, args ...any) {
	e := &Error{File: ps.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	ps.errs = append(ps.errs, e)
}

func parsePolicy(name string, data []byte) (*Policy, error) {
	ps := &parser{file: name, baseDir: filepath.Dir(name)}
	root, err := ps.document(data)
	if err != nil {
		return nil, err
	}
	p := ps.policy(root)
	// Problems are found field by field; report them in file order.
	slices.SortStableFunc(ps.errs, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	if err := errorsJoin(ps.errs); err != nil {
		return nil, err
	}
	return p, nil
}

// document parses data as exactly one YAML document and returns its root.
func (ps *parser) document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.errorf(nil, "", "empty policy: want a YAML mapping starting with \"version: %d\"", Version)
		} else {
			ps.syntaxError(data, err)
		}
		return nil, errorsJoin(ps.errs)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		ps.errorf(&next, "", "more than one YAML document: a policy is one document")
	case !errors.Is(err, io.EOF):
		ps.syntaxError(data, err)
	}
	if len(ps.errs) > 0 {
		return nil, errorsJoin(ps.errs)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		ps.errorf(&doc, "", "empty policy")
		return nil, errorsJoin(ps.errs)
	}
	return doc.Content[0], nil
}

// syntaxError records err, a YAML syntax error in data, at the line where
// the parser failed.
func (ps *parser) syntaxError(data []byte, err error) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		if line, convErr := strconv.Atoi(m[1]); convErr == nil {
			ps.errs = append(ps.errs, &Error{File: ps.file, Line: failedLine(data, m[2], line), Msg: "YAML: " + m[2]})
			return
		}
	}
	ps.errorf(nil, "", "%s", strings.Replace(msg, "yaml: ", "YAML: ", 1))
}

// failedLine returns the line where the YAML parser failed with problem
// (the message without "yaml: line N: "), or yamlLine when it cannot tell.
//
// yaml.v3 reports the line of its context, the start of the block or
// flow collection being parsed (often the line above a mis-indented key,
// or "builders:" two lines up), not that of the token it failed on. The
// parser reads the text in order and stops at its first problem, so the
// shortest run of leading lines that fails with the same problem ends on
// the line the parser failed on; a binary search finds it in a few
// parses.
func failedLine(data []byte, problem string, yamlLine int) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if !failsWith(data, problem) || len(lines) > 100_000 {
		return yamlLine
	}
	lo, hi := 1, len(lines) // prefix hi fails with problem; find the shortest
	for lo < hi {
		mid := lo + (hi-lo)/2
		if failsWith(bytes.Join(lines[:mid], nil), problem) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return hi
}

// failsWith says whether parsing data's YAML documents fails with problem.
func failsWith(data []byte, problem string) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			m := yamlLineRE.FindStringSubmatch(err.Error())
			return m != nil && m[2] == problem
		}
	}
}

// field is one key: value pair of a mapping.
type field struct {
	key, value *yaml.Node
}

// fields returns the pairs of mapping n by key, recording a problem for a
// node that is not a mapping, a key that is not a string, a key that is not
// one of known, and a key given twice. Null values count as absent.
func (ps *parser) fields(n *yaml.Node, path string, known ...string) map[string]field {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		ps.errorf(n, path, "must be a mapping, not %s", describeNode(n))
		return nil
	}
	out := make(map[string]field)
	seen := make(map[string]*yaml.Node)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			ps.errorf(k, path, "merge keys (<<) are not supported in a policy")
			continue
		}
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			ps.errorf(k, path, "field names must be strings, not %s", describeNode(k))
			continue
		}
		if !slices.Contains(known, k.Value) {
			// The name is shown only as a near miss of a known field: a
			// file that is no policy (a credentials file given or linked by
			// mistake) is never quoted.
			if hint := suggest(k.Value, known); hint != "" {
				ps.errorf(k, join(path, k.Value), "unknown field%s", hint)
			} else {
				ps.errorf(k, path, "unknown field: want one of %s", strings.Join(known, ", "))
			}
			continue
		}
		fp := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			ps.errorf(k, fp, "given twice (first at line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		if isNull(v) {
			continue
		}
		out[k.Value] = field{key: k, value: v}
	}
	return out
}

// sequence returns the items of a sequence value, or nil (after recording a
// problem) when the value is not a sequence.
func (ps *parser) sequence(f field, path string) []*yaml.Node {
	n := f.value
	if n.Kind != yaml.SequenceNode {
		ps.errorf(f.key, path, "must be a list, not %s", describeNode(n))
		return nil
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = resolve(c)
	}
	return out
}

// str returns the text of a scalar; numbers and booleans are taken as
// written.
func (ps *parser) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		ps.errorf(n, path, "must be a string, not %s", describeNode(n))
		return "", false
	}
	return n.Value, true
}

// integer returns the value of an integer scalar.
func (ps *parser) integer(f field, path string) (int, bool) {
	n := f.value
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		ps.errorf(f.key, path, "must be an integer, not %s", describeNode(n))
		return 0, false
	}
	var v int
	if err := n.Decode(&v); err != nil {
		ps.errorf(f.key, path, "%q is not an integer in range", n.Value)
		return 0, false
	}
	return v, true
}

// boolean returns the value of a boolean scalar.
func (ps *parser) boolean(f field, path string) (bool, bool) {
	n := f.value
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		ps.errorf(f.key, path, "must be true or false, not %s", describeNode(n))
		return false, false
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		ps.errorf(f.key, path, "%q is not true or false", n.Value)
		return false, false
	}
	return v, true
}
