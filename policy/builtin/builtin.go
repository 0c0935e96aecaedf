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
	"embed"
	"io/fs"

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
