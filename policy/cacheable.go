package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// nondeterministicPrefixes names builtins whose result depends on something
// other than their arguments, beyond the ones OPA itself marks
// non-deterministic.
var nondeterministicPrefixes = []string{"time.now_ns", "rand.", "uuid.rfc4122", "uuid.v", "http.send", "net.lookup", "opa.runtime"}

func isNondeterministic(name string) bool {
	if b, ok := ast.BuiltinMap[name]; ok && b.IsNondeterministic() {
		return true
	}
	for _, p := range nondeterministicPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// cacheability decides whether decisions of the entry point at entry may be
// cached under key. It walks every rule reachable from entry in the compiled
// modules and collects each input reference and builtin call. The entry
// point is cacheable only if every input reference lies under a declared key
// path and no non-deterministic builtin is called; otherwise the returned
// problems say why, with file and line.
func cacheability(c *ast.Compiler, entry ast.Ref, key []ast.Ref) []string {
	if key == nil {
		return []string{"no cache_key declared in METADATA custom.gavel"}
	}
	var problems []string
	seen := map[string]bool{}
	report := func(loc *ast.Location, msg string) {
		where := ""
		if loc != nil {
			where = fmt.Sprintf(" (%s:%d)", strings.TrimPrefix(loc.File, "/"), loc.Row)
		}
		if !seen[msg] {
			seen[msg] = true
			problems = append(problems, msg+where)
		}
	}

	visited := map[*ast.Rule]bool{}
	queue := slices.Clone(c.GetRules(entry))
	if len(queue) == 0 {
		return []string{fmt.Sprintf("no rules at %s", entry)}
	}

	var visitRef func(ref ast.Ref)
	var visitor *ast.GenericVisitor
	visitor = ast.NewGenericVisitor(func(x any) bool {
		switch x := x.(type) {
		case ast.Ref:
			visitRef(x)
			return true // visitRef walks the ref's own operands
		case ast.Var:
			if x.Equal(ast.InputRootDocument.Value) {
				// input used as a whole value, outside a reference.
				if !covered(ast.InputRootRef, key) {
					report(nil, "reads the whole input, outside the declared cache_key")
				}
			}
		}
		return false
	})
	visitRef = func(ref ast.Ref) {
		head := ref[0]
		switch {
		case head.Equal(ast.InputRootDocument):
			if !covered(ref, key) {
				report(head.Location, fmt.Sprintf("reads %s, outside the declared cache_key", ref))
			}
		case head.Equal(ast.DefaultRootDocument):
			for _, r := range c.GetRulesDynamicWithOpts(ref, ast.RulesOptions{IncludeHiddenModules: true}) {
				if !visited[r] {
					queue = append(queue, r)
				}
			}
		default:
			if name := ref.String(); isNondeterministic(name) {
				report(head.Location, fmt.Sprintf("calls non-deterministic builtin %s", name))
			}
		}
		for _, t := range ref[1:] {
			visitor.Walk(t)
		}
	}

	for len(queue) > 0 {
		r := queue[0]
		queue = queue[1:]
		if visited[r] {
			continue
		}
		visited[r] = true
		visitor.Walk(r)
	}
	return problems
}

// covered reports whether ref reads only below one of the declared key
// paths. A ref with a variable where a key path has a constant is not
// covered: it may read any sibling.
func covered(ref ast.Ref, key []ast.Ref) bool {
	for _, k := range key {
		if ref.HasPrefix(k) {
			return true
		}
	}
	return false
}
