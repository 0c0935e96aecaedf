package policy

import (
	"encoding/json"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Redacted replaces what an entry point marks sensitive in a recorded
// input.
const Redacted = "[REDACTED]"

// MaxAuditInput is the largest recorded input; a larger one is left out of
// the audit record (its digest stays).
const MaxAuditInput = 64 << 10

// AuditInput is the input as JSON for the audit trail, with every path in
// sensitive replaced by "[REDACTED]". It returns nil when the input is
// larger than MaxAuditInput. It is meant to run off the decision path (the
// audit writer calls it).
func AuditInput(in Input, sensitive []ast.Ref) ([]byte, error) {
	v, err := in.Value()
	if err != nil || v == nil {
		return nil, err
	}
	doc, err := ast.JSON(v)
	if err != nil {
		return nil, fmt.Errorf("audit input: %w", err)
	}
	for _, ref := range sensitive {
		redact(doc, ref[1:])
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("audit input: %w", err)
	}
	if len(b) > MaxAuditInput {
		return nil, nil
	}
	return b, nil
}

// redact replaces the value at path below doc, if there is one.
func redact(doc any, path ast.Ref) {
	if len(path) == 0 {
		return
	}
	last := len(path) == 1
	switch d := doc.(type) {
	case map[string]any:
		k, ok := path[0].Value.(ast.String)
		if !ok {
			return
		}
		child, ok := d[string(k)]
		if !ok {
			return
		}
		if last {
			d[string(k)] = Redacted
			return
		}
		redact(child, path[1:])
	case []any:
		n, ok := path[0].Value.(ast.Number)
		if !ok {
			return
		}
		i, ok := n.Int()
		if !ok || i < 0 || i >= len(d) {
			return
		}
		if last {
			d[i] = Redacted
			return
		}
		redact(d[i], path[1:])
	}
}
