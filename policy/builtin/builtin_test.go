package builtin_test

import (
	"testing"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/policy/builtin"
)

func TestDefaultBundleTestsPass(t *testing.T) {
	b, err := builtin.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	results, err := policy.RunTests(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 10 {
		t.Fatalf("ran %d Rego tests, want the default bundle's suite", len(results))
	}
	for _, r := range results {
		if !r.Passed {
			t.Error(r)
		}
	}
}

func TestDefaultEntryPointIsCacheable(t *testing.T) {
	b, err := builtin.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.Compile(t.Context(), b, policy.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := e.EntryPoint(t.Context(), "envoy/authz/allow")
	if err != nil {
		t.Fatal(err)
	}
	if !ep.Declared || !ep.Cacheable() {
		t.Fatalf("envoy/authz/allow: declared=%v not cacheable because %v", ep.Declared, ep.NotCacheable)
	}
	if !ep.Config.ReadsBody {
		t.Error("envoy/authz/allow should declare reads_body")
	}
}
