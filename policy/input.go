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
// {"agent", "event", "hook", "principal", "session"}. The value is held in
// OPA's own representation so evaluation does not convert it again, and it
// must not be modified once built.
type Input struct {
	value ast.Value
}

// NewInput converts a JSON-compatible Go value (maps, slices, strings,
// json.Number, bool, nil) to an Input.
func NewInput(doc any) (Input, error) {
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		return Input{}, fmt.Errorf("build input: %w", err)
	}
	return Input{value: v}, nil
}

// InputFromValue wraps an OPA value as an Input.
func InputFromValue(v ast.Value) Input { return Input{value: v} }

// Value returns the input as an OPA value.
func (in Input) Value() ast.Value { return in.value }

// IsZero reports whether the input holds no document.
func (in Input) IsZero() bool { return in.value == nil }

// Find returns the value at path below the input document, or false when
// the path does not exist. path holds object keys (ast.String) and array
// indexes (ast.Number).
func (in Input) Find(path ast.Ref) (ast.Value, bool) {
	if in.value == nil {
		return nil, false
	}
	v, err := in.value.Find(path)
	if err != nil {
		return nil, false
	}
	return v, true
}
