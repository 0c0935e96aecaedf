// Package bundles is the bundle lifecycle API: upload (checked: read,
// signature, compile, the bundle's own Rego tests), history, activation
// and rollback, and diffs between revisions. Activation is recorded in the
// store, which tells every replica (store/bundlesync applies it).
package bundles

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gavel-dev/gavel/policy"
)

// Problem is one reason a bundle was rejected, located where it can be.
type Problem struct {
	// Kind is read, signature, compile or test.
	Kind    string `json:"kind"`
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	if loc == "" {
		return p.Kind + ": " + p.Message
	}
	return fmt.Sprintf("%s: %s: %s", p.Kind, loc, p.Message)
}

// Rejected is an upload that failed its checks.
type Rejected struct {
	Problems []Problem
}

func (r *Rejected) Error() string {
	msgs := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		msgs[i] = p.String()
	}
	return "bundle rejected: " + strings.Join(msgs, "; ")
}

// CheckOptions configure [Check].
type CheckOptions struct {
	Limits policy.Limits
	// Verifier, when set, requires a valid signature.
	Verifier *policy.Verifier
	// Compile are the options the serving engine compiles with.
	Compile policy.CompileOptions
}

// Checked is a bundle that passed its checks.
type Checked struct {
	Bundle *policy.Bundle
	Tests  int
	Signed bool
}

// Check reads a bundle tarball and runs every check a bundle must pass
// before it is stored: it reads (size limits, no paths leaving the root,
// no links), its signature verifies when a verifier is configured, it
// compiles as the serving engine compiles it, and its Rego tests pass. A
// failure is a *Rejected listing every problem found at the failing stage,
// by file and line.
func Check(ctx context.Context, source string, r io.Reader, opts CheckOptions) (Checked, error) {
	b, err := policy.ReadTarGz(source, r, opts.Limits)
	if err != nil {
		return Checked{}, &Rejected{[]Problem{{Kind: "read", Message: err.Error()}}}
	}
	c := Checked{Bundle: b}
	if opts.Verifier != nil {
		if err := opts.Verifier.Verify(b); err != nil {
			return c, &Rejected{[]Problem{{Kind: "signature", Message: err.Error()}}}
		}
		c.Signed = true
	}
	if _, err := policy.Compile(ctx, b, opts.Compile); err != nil {
		return c, &Rejected{compileProblems(err)}
	}
	results, err := policy.RunTests(ctx, b)
	if err != nil {
		return c, &Rejected{compileProblems(err)}
	}
	var failed []Problem
	for _, r := range results {
		switch {
		case r.Skipped:
		case r.Error != "":
			failed = append(failed, Problem{Kind: "test", File: strings.TrimPrefix(r.File, "/"), Line: r.Row,
				Message: fmt.Sprintf("%s.%s: error: %s", strings.TrimPrefix(r.Package, "data."), r.Name, r.Error)})
		case !r.Passed:
			failed = append(failed, Problem{Kind: "test", File: strings.TrimPrefix(r.File, "/"), Line: r.Row,
				Message: fmt.Sprintf("%s.%s failed", strings.TrimPrefix(r.Package, "data."), r.Name)})
		default:
			c.Tests++
		}
	}
	if len(failed) > 0 {
		return c, &Rejected{failed}
	}
	return c, nil
}

// compileProblems lists a compile error's problems by file and line.
func compileProblems(err error) []Problem {
	var errs ast.Errors
	if errors.As(err, &errs) && len(errs) > 0 {
		out := make([]Problem, 0, len(errs))
		for _, e := range errs {
			p := Problem{Kind: "compile", Message: e.Message}
			if e.Location != nil {
				p.File, p.Line = strings.TrimPrefix(e.Location.File, "/"), e.Location.Row
			}
			out = append(out, p)
		}
		return out
	}
	var one *ast.Error
	if errors.As(err, &one) {
		p := Problem{Kind: "compile", Message: one.Message}
		if one.Location != nil {
			p.File, p.Line = strings.TrimPrefix(one.Location.File, "/"), one.Location.Row
		}
		return []Problem{p}
	}
	msg := err.Error()
	var ce *policy.CompileError
	if errors.As(err, &ce) && ce.Err != nil {
		msg = ce.Err.Error()
	}
	return []Problem{{Kind: "compile", Message: msg}}
}
