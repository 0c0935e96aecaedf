package policy_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"testing"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/policy/builtin"
)

const benchEntry = "envoy/authz/allow"

// defaultBundleWithKeys is the built-in bundle with an API key table, as an
// operator supplies it: sha256(key) in hex to the principal.
func defaultBundleWithKeys(b *testing.B, keys map[string]map[string]any) *policy.Bundle {
	b.Helper()
	def, err := builtin.Bundle()
	if err != nil {
		b.Fatal(err)
	}
	table := map[string]any{}
	for k, p := range keys {
		sum := sha256.Sum256([]byte(k))
		table[hex.EncodeToString(sum[:])] = p
	}
	doc, err := json.Marshal(table)
	if err != nil {
		b.Fatal(err)
	}
	files := maps.Clone(def.Files)
	const path = "/gavel/http/api_keys/data.json"
	if _, ok := files[path]; !ok {
		b.Fatalf("the default bundle has no %s", path)
	}
	files[path] = doc
	withKeys, err := policy.NewBundle(builtin.Source+"+keys", files)
	if err != nil {
		b.Fatal(err)
	}
	return withKeys
}

// benchInputs are Envoy requests the default bundle allows.
func benchInputs(b *testing.B, n int) []policy.Input {
	b.Helper()
	ins := make([]policy.Input, n)
	for i := range ins {
		ins[i] = input(b, fmt.Sprintf(`{
			"attributes": {
				"request": {"http": {
					"id": "%d",
					"method": "POST",
					"path": "/api/v1/orders",
					"host": "shop.example",
					"headers": {":authority": "shop.example", "x-api-key": "k-editor", "content-type": "application/json", "x-request-id": "req-%d"}
				}},
				"source": {"address": {"socketAddress": {"address": "10.0.0.7", "portValue": 51234}}}
			},
			"parsed_path": ["api", "v1", "orders"],
			"parsed_query": {},
			"parsed_body": {"item": "book-%d", "qty": 2},
			"truncated_body": false,
			"version": {"encoding": "protojson", "ext_authz": "v3"}
		}`, i, i, i%64))
	}
	return ins
}

func benchService(b *testing.B, opts policy.Options) *policy.Service {
	b.Helper()
	opts.Logger = quietLogger()
	s := policy.NewService(opts)
	bundle := defaultBundleWithKeys(b, map[string]map[string]any{
		"k-editor": {"name": "ed", "roles": []string{"editor"}},
		"k-viewer": {"name": "vera", "roles": []string{"viewer"}},
	})
	if _, err := s.Activate(b.Context(), bundle); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkDecide measures one decision of the default bundle's entry
// point: hit answers from L1 (64 distinct bodies, all cached after the first
// round); miss evaluates every time (cache disabled).
func BenchmarkDecide(b *testing.B) {
	for _, bc := range []struct {
		name   string
		opts   policy.Options
		cached bool
	}{
		{"hit", policy.Options{}, true},
		{"miss", policy.Options{Cache: policy.CacheOptions{Disabled: true}}, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := benchService(b, bc.opts)
			ins := benchInputs(b, 256)
			for _, in := range ins { // warm the cache; check the bundle allows them
				d, err := s.Decide(b.Context(), benchEntry, in)
				if err != nil || !d.Allowed() {
					b.Fatalf("%+v, %v", d, err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				d, err := s.Decide(b.Context(), benchEntry, ins[i%len(ins)])
				if err != nil || d.Cached != bc.cached {
					b.Fatalf("%+v, %v", d, err)
				}
				i++
			}
		})
	}
}

// BenchmarkCacheKey measures hashing the default entry point's key paths.
func BenchmarkCacheKey(b *testing.B) {
	s := benchService(b, policy.Options{})
	e := s.Engine()
	ep, err := e.EntryPoint(b.Context(), benchEntry)
	if err != nil || !ep.Cacheable() {
		b.Fatalf("%v %v", ep, err)
	}
	ins := benchInputs(b, 64)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := policy.CacheKeyOf(e, ep, ins[i%len(ins)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
