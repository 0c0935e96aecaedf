package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// EntryPointConfig is what a bundle declares about one entry point, in the
// METADATA annotation of the rule (or, with `scope: document`, of all rules
// with that name) under `custom.gavel`:
//
//	# METADATA
//	# scope: document
//	# entrypoint: true
//	# custom:
//	#   gavel:
//	#     cache_key:
//	#       - input.attributes.request.http.method
//	#       - input.parsed_path
//	#       - input.attributes.request.http.headers["x-api-key"]
//	#     cache_ttl: 60s
//	#     dry_run: false
//	#     reads_body: false
//
// cache_key lists the input paths the decision depends on, as Rego
// references. At compile time gavel proves that every input reference
// reachable from the entry point lies under one of them; otherwise the entry
// point is evaluated without the cache and [EntryPoint.NotCacheable] says
// why.
type EntryPointConfig struct {
	// CacheKey lists the declared input paths; nil means "not declared".
	CacheKey []ast.Ref
	// CacheTTL bounds how long a decision of this entry point is cached
	// (zero: the cache's own bound).
	CacheTTL time.Duration
	// DryRun: decisions are computed, logged and counted, but the caller
	// allows the action.
	DryRun bool
	// ReadsBody tells a control plane to send the request body to ext_authz
	// for routes that use this entry point.
	ReadsBody bool
	// Sensitive lists input paths the audit trail must not keep: the
	// recorded input has "[REDACTED]" in their place.
	Sensitive []ast.Ref
}

// EntryPointRef turns an entry point path ("envoy/authz/allow", or
// "data.envoy.authz.allow") into a data reference.
func EntryPointRef(path string) (ast.Ref, error) {
	p := strings.TrimSpace(path)
	if p == "" {
		return nil, fmt.Errorf("entry point: empty path")
	}
	slash := !strings.HasPrefix(p, "data.") && p != "data"
	segments := strings.Split(strings.Trim(p, "/"), "/")
	if slash {
		p = "data." + strings.Join(segments, ".")
	}
	ref, err := ast.ParseRef(p)
	if err != nil && slash {
		// Segments that are not Rego identifiers ("my-app", the slash form
		// of data["my-app"]) are object keys, as EntryPointPath writes them.
		ref, err = ast.Ref{ast.DefaultRootDocument}, nil
		for _, s := range segments {
			ref = append(ref, ast.StringTerm(s))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("entry point %q: %w", path, err)
	}
	if !ref.IsGround() {
		return nil, fmt.Errorf("entry point %q: must not contain variables", path)
	}
	return ref, nil
}

// EntryPointPath is the slash form of a data reference ("envoy/authz/allow").
func EntryPointPath(ref ast.Ref) string {
	parts := make([]string, 0, len(ref)-1)
	for _, t := range ref[1:] {
		if s, ok := t.Value.(ast.String); ok {
			parts = append(parts, string(s))
		} else {
			parts = append(parts, t.Value.String())
		}
	}
	return strings.Join(parts, "/")
}

// entryPointAnnotations finds, for every annotated rule path, the merged
// gavel configuration and whether it is marked as an entry point.
func entryPointAnnotations(c *ast.Compiler) (map[string]EntryPointConfig, map[string]bool, error) {
	configs := map[string]EntryPointConfig{}
	entries := map[string]bool{}
	as := c.GetAnnotationSet()
	if as == nil {
		return configs, entries, nil
	}
	for _, ar := range as.Flatten() {
		a := ar.Annotations
		if a == nil || (a.Scope != "rule" && a.Scope != "document") {
			continue
		}
		path := EntryPointPath(ar.Path)
		if a.Entrypoint {
			entries[path] = true
		}
		raw, ok := a.Custom["gavel"]
		if !ok {
			continue
		}
		cfg, err := parseEntryPointConfig(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: METADATA custom.gavel for %s: %w", ar.Location, path, err)
		}
		if prev, dup := configs[path]; dup && !equalConfig(prev, cfg) {
			return nil, nil, fmt.Errorf("%s: METADATA custom.gavel for %s conflicts with another annotation of the same rule", ar.Location, path)
		}
		configs[path] = cfg
	}
	return configs, entries, nil
}

func equalConfig(a, b EntryPointConfig) bool {
	eq := func(x, y ast.Ref) bool { return x.Equal(y) }
	return a.CacheTTL == b.CacheTTL && a.DryRun == b.DryRun && a.ReadsBody == b.ReadsBody &&
		slices.EqualFunc(a.CacheKey, b.CacheKey, eq) && slices.EqualFunc(a.Sensitive, b.Sensitive, eq)
}

func parseEntryPointConfig(raw any) (EntryPointConfig, error) {
	var cfg EntryPointConfig
	m, ok := raw.(map[string]any)
	if !ok {
		return cfg, fmt.Errorf("want an object, got %T", raw)
	}
	for k, v := range m {
		switch k {
		case "cache_key", "sensitive":
			list, ok := v.([]any)
			if !ok {
				return cfg, fmt.Errorf("%s: want a list of input references", k)
			}
			refs := make([]ast.Ref, 0, len(list))
			for i, e := range list {
				s, ok := e.(string)
				if !ok {
					return cfg, fmt.Errorf("%s[%d]: want a string such as input.parsed_path", k, i)
				}
				ref, err := parseInputRef(s)
				if err != nil {
					return cfg, fmt.Errorf("%s[%d]: %w", k, i, err)
				}
				refs = append(refs, ref)
			}
			if k == "cache_key" {
				cfg.CacheKey = refs
			} else {
				cfg.Sensitive = refs
			}
		case "cache_ttl":
			s, ok := v.(string)
			d, err := time.ParseDuration(s)
			if !ok || err != nil || d < 0 {
				return cfg, fmt.Errorf("cache_ttl: want a duration such as \"30s\", got %v", v)
			}
			cfg.CacheTTL = d
		case "dry_run", "reads_body":
			b, ok := v.(bool)
			if !ok {
				return cfg, fmt.Errorf("%s: want true or false, got %v", k, v)
			}
			if k == "dry_run" {
				cfg.DryRun = b
			} else {
				cfg.ReadsBody = b
			}
		default:
			return cfg, fmt.Errorf("unknown key %q (known: cache_key, cache_ttl, dry_run, reads_body, sensitive)", k)
		}
	}
	return cfg, nil
}

// parseInputRef parses a declared key path such as
// input.attributes.request.http.headers["x-api-key"]. It must start at input
// and be ground.
func parseInputRef(s string) (ast.Ref, error) {
	ref, err := ast.ParseRef(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%q is not a Rego reference: %w", s, err)
	}
	if !ref[0].Equal(ast.InputRootDocument) {
		return nil, fmt.Errorf("%q does not start at input", s)
	}
	if !ref.IsGround() {
		return nil, fmt.Errorf("%q must not contain variables", s)
	}
	return ref, nil
}
