package policy

import (
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// An entry point that is cacheable reads nothing of its input outside the
// declared cache_key paths: compile-time analysis proved it. So evaluating
// it against the input projected onto those paths, with everything else
// left out, gives the same decision as evaluating it against the whole
// input, and spares rendering the rest (for Envoy checks, most of the
// CheckRequest). The property tests compare the two on generated inputs.

// projection returns the indexes into key of the paths that make up the
// projected input (those with no declared path as a proper prefix), or
// false when the input cannot be projected: a path indexes an array (a
// projection cannot hold part of an array) or is input itself.
func projection(key []ast.Ref) ([]int, bool) {
	order := make([]int, len(key))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return len(key[a]) - len(key[b]) })
	var keep []int
	for _, i := range order {
		p := key[i]
		if len(p) < 2 {
			return nil, false
		}
		for _, t := range p[1:] {
			if _, ok := t.Value.(ast.String); !ok {
				return nil, false
			}
		}
		covered := false
		for _, j := range keep {
			if p.HasPrefix(key[j]) {
				covered = true
				break
			}
		}
		if !covered {
			keep = append(keep, i)
		}
	}
	return keep, true
}

// project builds the input holding only the values found at the kept key
// paths (nil values are absent and left out).
func project(key []ast.Ref, keep []int, vals []ast.Value) Input {
	root := ast.NewObject()
	for _, i := range keep {
		if vals[i] == nil {
			continue
		}
		obj := root
		path := key[i][1:]
		for _, t := range path[:len(path)-1] {
			child := obj.Get(t)
			if child == nil {
				child = ast.NewTerm(ast.NewObject())
				obj.Insert(t, child)
			}
			obj = child.Value.(ast.Object) // only objects are created here
		}
		obj.Insert(path[len(path)-1], ast.NewTerm(vals[i]))
	}
	return InputFromValue(root)
}
