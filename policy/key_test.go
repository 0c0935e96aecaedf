package policy

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func refs(paths ...string) []ast.Ref {
	out := make([]ast.Ref, len(paths))
	for i, p := range paths {
		out[i] = ast.MustParseRef(p)
	}
	return out
}

func TestCacheKey(t *testing.T) {
	keyOf := func(t *testing.T, doc string, paths ...string) Key {
		t.Helper()
		return mustKey(t, "rev", "app/allow", refs(paths...), mustInput(t, doc))
	}
	tests := []struct {
		name  string
		a, b  string
		paths []string
		same  bool
	}{
		{"fields outside the key", `{"k": 1, "x": 1}`, `{"k": 1, "x": 2, "y": 3}`, []string{"input.k"}, true},
		{"object key order", `{"k": {"a": 1, "b": {"c": 2, "d": 3}}}`, `{"k": {"b": {"d": 3, "c": 2}, "a": 1}}`, []string{"input.k"}, true},
		{"absent vs null", `{}`, `{"k": null}`, []string{"input.k"}, false},
		{"null vs false", `{"k": null}`, `{"k": false}`, []string{"input.k"}, false},
		{"false vs true", `{"k": false}`, `{"k": true}`, []string{"input.k"}, false},
		{"number vs string", `{"k": 1}`, `{"k": "1"}`, []string{"input.k"}, false},
		{"1 vs 1.0 (a miss, never a wrong hit)", `{"k": 1}`, `{"k": 1.0}`, []string{"input.k"}, false},
		{"0 vs -0", `{"k": 0}`, `{"k": -0}`, []string{"input.k"}, false},
		{"1e2 vs 100", `{"k": 1e2}`, `{"k": 100}`, []string{"input.k"}, false},
		{"big numbers", `{"k": 12345678901234567890}`, `{"k": 12345678901234567891}`, []string{"input.k"}, false},
		{"array vs object", `{"k": []}`, `{"k": {}}`, []string{"input.k"}, false},
		{"array order", `{"k": [1, 2]}`, `{"k": [2, 1]}`, []string{"input.k"}, false},
		{"string boundaries in arrays", `{"k": ["ab", "c"]}`, `{"k": ["a", "bc"]}`, []string{"input.k"}, false},
		{"string boundaries across paths", `{"a": "ab", "b": "c"}`, `{"a": "a", "b": "bc"}`, []string{"input.a", "input.b"}, false},
		{"values moved between paths", `{"a": "x"}`, `{"b": "x"}`, []string{"input.a", "input.b"}, false},
		{"nested array vs flat", `{"k": [[1], 2]}`, `{"k": [1, [2]]}`, []string{"input.k"}, false},
		{"object key vs value", `{"k": {"a": "b"}}`, `{"k": {"b": "a"}}`, []string{"input.k"}, false},
		{"path through a non-object is absent", `{"k": "str"}`, `{}`, []string{"input.k.x"}, true},
		{"path through null is absent", `{"k": null}`, `{}`, []string{"input.k.x"}, true},
		{"array index", `{"p": ["a", "b"]}`, `{"p": ["a", "c"]}`, []string{"input.p[0]"}, true},
		{"array index out of range is absent", `{"p": []}`, `{}`, []string{"input.p[0]"}, true},
		{"number key on an object is absent", `{"p": {"0": "a"}}`, `{}`, []string{"input.p[0]"}, true},
		{"quoted key", `{"h": {"x-api-key": "a"}}`, `{"h": {"x-api-key": "b"}}`, []string{`input.h["x-api-key"]`}, false},
		{"whole input", `{"a": 1}`, `{"a": 1, "b": 2}`, []string{"input"}, false},
		{"no paths", `{"a": 1}`, `{"a": 2}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := keyOf(t, tt.a, tt.paths...), keyOf(t, tt.b, tt.paths...)
			if (a == b) != tt.same {
				t.Errorf("keys of %s and %s equal: %v, want %v", tt.a, tt.b, a == b, tt.same)
			}
		})
	}

	in := mustInput(t, `{"k": 1}`)
	base := mustKey(t, "rev", "app/allow", refs("input.k"), in)
	for name, k := range map[string]Key{
		"revision":   mustKey(t, "rev2", "app/allow", refs("input.k"), in),
		"entry":      mustKey(t, "rev", "app/other", refs("input.k"), in),
		"key paths":  mustKey(t, "rev", "app/allow", refs("input.k", "input.j"), in),
		"boundaries": mustKey(t, "re", "vapp/allow", refs("input.k"), in),
	} {
		if k == base {
			t.Errorf("the key ignores the %s", name)
		}
	}
	if zero := mustKey(t, "rev", "app/allow", refs("input.k"), Input{}); zero == base {
		t.Error("the zero input keys like a present value")
	}
}

// Sets and non-string keys only come from InputFromValue; they must still
// key by value.
func TestCacheKeyOPAValues(t *testing.T) {
	keyOf := func(v string) Key {
		return mustKey(t, "rev", "e", refs("input.k"), InputFromValue(ast.MustParseTerm(v).Value))
	}
	if keyOf(`{"k": {1, 2, 3}}`) != keyOf(`{"k": {3, 2, 1}}`) {
		t.Error("set element order changed the key")
	}
	if keyOf(`{"k": {1, 2}}`) == keyOf(`{"k": [1, 2]}`) {
		t.Error("a set keys like an array")
	}
	if keyOf(`{"k": {1: "a", 2: "b"}}`) != keyOf(`{"k": {2: "b", 1: "a"}}`) {
		t.Error("number-keyed object order changed the key")
	}
	if keyOf(`{"k": {1: "a"}}`) == keyOf(`{"k": {"1": "a"}}`) {
		t.Error("a number key keys like a string key")
	}
}
