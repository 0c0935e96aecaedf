// Package builtin holds gavel's default policy bundle, embedded in the
// binary so `gavel serve` decides with no configuration at all.
//
// The bundle's HTTP rules (entry point envoy/authz/allow) check an API key
// and a role per route: data.gavel.http.routes lists routes by path prefix
// with the roles each method needs; data.gavel.http.api_keys maps the sha256
// of a key to its principal and roles. It ships with no keys, so every route
// that is not public is denied until keys are supplied.
package builtin

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"strings"

	"github.com/gavel-dev/gavel/policy"
)

//go:embed all:bundle
var files embed.FS

// FS is the default bundle's file tree.
func FS() fs.FS {
	sub, err := fs.Sub(files, "bundle")
	if err != nil {
		panic(err) // the embedded tree always has the directory
	}
	return sub
}

// Source is how the default bundle is named in logs and metrics.
const Source = "builtin:default"

// Bundle loads the default bundle.
func Bundle() (*policy.Bundle, error) {
	return policy.LoadFS(Source, FS(), policy.Limits{})
}

// Principal is who an API key belongs to, and the roles it holds.
type Principal struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
}

// HashedKeyPrefix marks a key given as the hex sha256 of the key rather
// than the key itself, so a key file need not hold keys in clear.
const HashedKeyPrefix = "sha256:"

// BundleWithKeys is the default bundle with an API key table. Keys are
// stored as their sha256, never in clear; a key written "sha256:<hex>" is
// taken as already hashed.
func BundleWithKeys(keys map[string]Principal) (*policy.Bundle, error) {
	b, err := Bundle()
	if err != nil {
		return nil, err
	}
	table := make(map[string]Principal, len(keys))
	for k, p := range keys {
		if h, ok := strings.CutPrefix(k, HashedKeyPrefix); ok {
			if _, err := hex.DecodeString(h); err != nil || len(h) != 64 {
				return nil, fmt.Errorf("api key %q: want sha256: and 64 hex digits", k)
			}
			table[strings.ToLower(h)] = p
			continue
		}
		sum := sha256.Sum256([]byte(k))
		table[hex.EncodeToString(sum[:])] = p
	}
	doc, err := json.Marshal(table)
	if err != nil {
		return nil, fmt.Errorf("encode api keys: %w", err)
	}
	files := maps.Clone(b.Files)
	files["/gavel/http/api_keys/data.json"] = doc
	return policy.NewBundle(Source+"+keys", files)
}

// ReadKeys reads an API key file: a JSON object from key (or
// "sha256:<hex>") to {"name": ..., "roles": [...]}.
func ReadKeys(path string) (map[string]Principal, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("api keys: %w", err)
	}
	var keys map[string]Principal
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, fmt.Errorf("api keys %s: want a JSON object of key to {\"name\", \"roles\"}: %w", path, err)
	}
	for k, p := range keys {
		if k == "" || p.Name == "" {
			return nil, fmt.Errorf("api keys %s: every entry needs a non-empty key and a name", path)
		}
	}
	return keys, nil
}
