package policy

import (
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func keyRefs(t *testing.T, ss ...string) []ast.Ref {
	t.Helper()
	out := make([]ast.Ref, len(ss))
	for i, s := range ss {
		out[i] = ast.MustParseRef(s)
	}
	return out
}

func TestProjection(t *testing.T) {
	tests := []struct {
		key  []string
		keep []int
		ok   bool
	}{
		{[]string{"input.a", "input.b.c"}, []int{0, 1}, true},
		{[]string{"input.a.b", "input.a"}, []int{1}, true},                    // a covers a.b
		{[]string{"input.a.b", "input.a.c", "input.x"}, []int{2, 0, 1}, true}, // shortest first
		{[]string{`input.h["x-api-key"]`, "input.h.other"}, []int{0, 1}, true},
		{[]string{"input.p[0]"}, nil, false}, // part of an array
		{[]string{"input"}, nil, false},      // the whole input
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.key), func(t *testing.T) {
			keep, ok := projection(keyRefs(t, tc.key...))
			if ok != tc.ok || fmt.Sprint(keep) != fmt.Sprint(tc.keep) {
				t.Fatalf("projection = %v, %v; want %v, %v", keep, ok, tc.keep, tc.ok)
			}
		})
	}
}

func TestProjectKeepsOnlyTheKey(t *testing.T) {
	full := ast.MustParseTerm(`{
		"attributes": {"request": {"http": {"method": "GET", "headers": {"x-api-key": "k", "cookie": "secret"}, "path": "/a"}}},
		"parsed_path": ["a"],
		"parsed_body": null
	}`).Value
	key := keyRefs(t,
		"input.attributes.request.http.method",
		`input.attributes.request.http.headers["x-api-key"]`,
		"input.parsed_path",
		"input.parsed_body",
		"input.parsed_query.page", // absent
	)
	in := InputFromValue(full)
	vals, err := findValues(key, in)
	if err != nil {
		t.Fatal(err)
	}
	keep, ok := projection(key)
	if !ok {
		t.Fatal("not projectable")
	}
	got, _ := project(key, keep, vals).Value()
	want := ast.MustParseTerm(`{
		"attributes": {"request": {"http": {"method": "GET", "headers": {"x-api-key": "k"}}}},
		"parsed_path": ["a"],
		"parsed_body": null
	}`).Value
	if got.Compare(want) != 0 {
		t.Fatalf("projected %v\nwant      %v", got, want)
	}
	// Every key path reads the same from the projection as from the input.
	for _, p := range key {
		a, aok, _ := in.Find(p[1:])
		b, bok := FindValue(got, p[1:])
		if aok != bok || (aok && a.Compare(b) != 0) {
			t.Errorf("%v: input %v %v, projection %v %v", p, a, aok, b, bok)
		}
	}
}
