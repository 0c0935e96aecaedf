package policy

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Input is the document a policy sees as `input`.
//
// For Envoy traffic it is the OPA-Envoy input document (attributes,
// parsed_path, parsed_query, parsed_body, truncated_body, version), so
// existing OPA-Envoy policies run unchanged. For agent events it is
// {"agent", "event", "hook", "principal", "session"}.
//
// An Input is read two ways: whole, for evaluation, and by path, for the
// decision cache's key. A [Document] may answer paths without building the
// whole value, which is what makes a cache hit cheap; it must answer every
// path exactly as the whole value would.
type Input struct {
	doc Document
}

// Document is an input document that can be read whole or by path. Both
// must agree: Find(p) is the whole value's value at p. Implementations are
// safe for concurrent use and never change once built, and report a
// document that cannot be built when it is built: an entry point that
// reads only its cache_key paths is evaluated on those paths alone (see
// project.go), so Value may never be called.
type Document interface {
	// Value is the whole document.
	Value() (ast.Value, error)
	// Find is the value at path below the document root; found is false
	// when the path does not exist. path holds object keys (ast.String) and
	// array indexes (ast.Number).
	Find(path ast.Ref) (v ast.Value, found bool, err error)
}

// NewInput converts a JSON-compatible Go value (maps, slices, strings,
// json.Number, bool, nil) to an Input.
func NewInput(doc any) (Input, error) {
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		return Input{}, fmt.Errorf("build input: %w", err)
	}
	return InputFromValue(v), nil
}

// InputFromValue wraps an OPA value as an Input.
func InputFromValue(v ast.Value) Input { return Input{doc: valueDocument{v}} }

// InputFromDocument wraps a Document as an Input.
func InputFromDocument(d Document) Input { return Input{doc: d} }

// Value returns the whole input, or nil for the zero Input.
func (in Input) Value() (ast.Value, error) {
	if in.doc == nil {
		return nil, nil
	}
	return in.doc.Value()
}

// Find returns the value at path below the input root.
func (in Input) Find(path ast.Ref) (ast.Value, bool, error) {
	if in.doc == nil {
		return nil, false, nil
	}
	return in.doc.Find(path)
}

// IsZero reports whether the input holds no document.
func (in Input) IsZero() bool { return in.doc == nil }

type valueDocument struct{ v ast.Value }

func (d valueDocument) Value() (ast.Value, error) { return d.v, nil }

func (d valueDocument) Find(path ast.Ref) (ast.Value, bool, error) {
	v, ok := FindValue(d.v, path)
	return v, ok, nil
}

// FindValue is the value at path below v, or false when it does not exist.
func FindValue(v ast.Value, path ast.Ref) (ast.Value, bool) {
	if v == nil {
		return nil, false
	}
	found, err := v.Find(path)
	if err != nil {
		return nil, false
	}
	return found, true
}
