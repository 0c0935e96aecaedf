package policy

import (
	"fmt"
	"strconv"
	"unicode/utf8"

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
// audit writer calls it), and encodes the OPA value directly, redacting as
// it goes, without building Go maps on the way.
func AuditInput(in Input, sensitive []ast.Ref) ([]byte, error) {
	v, err := in.Value()
	if err != nil || v == nil {
		return nil, err
	}
	var root *redactNode
	for _, ref := range sensitive {
		root = root.add(ref[1:])
	}
	e := jsonEncoder{buf: make([]byte, 0, 2048)}
	if err := e.value(v, root); err != nil {
		return nil, fmt.Errorf("audit input: %w", err)
	}
	if e.over || len(e.buf) > MaxAuditInput {
		return nil, nil
	}
	return e.buf, nil
}

// redactNode is a trie of sensitive paths: a leaf is redacted whole.
type redactNode struct {
	leaf    bool
	keys    map[string]*redactNode
	indexes map[int]*redactNode
}

func (n *redactNode) add(path ast.Ref) *redactNode {
	if n == nil {
		n = &redactNode{}
	}
	if len(path) == 0 {
		n.leaf = true
		return n
	}
	switch k := path[0].Value.(type) {
	case ast.String:
		if n.keys == nil {
			n.keys = map[string]*redactNode{}
		}
		n.keys[string(k)] = n.keys[string(k)].add(path[1:])
	case ast.Number:
		if i, ok := k.Int(); ok {
			if n.indexes == nil {
				n.indexes = map[int]*redactNode{}
			}
			n.indexes[i] = n.indexes[i].add(path[1:])
		}
	}
	return n
}

func (n *redactNode) key(k string) *redactNode {
	if n == nil || n.keys == nil {
		return nil
	}
	return n.keys[k]
}

func (n *redactNode) index(i int) *redactNode {
	if n == nil || n.indexes == nil {
		return nil
	}
	return n.indexes[i]
}

type jsonEncoder struct {
	buf  []byte
	over bool // past MaxAuditInput: stop
}

func (e *jsonEncoder) value(v ast.Value, n *redactNode) error {
	if e.over {
		return nil
	}
	if len(e.buf) > MaxAuditInput {
		e.over = true
		return nil
	}
	if n != nil && n.leaf {
		e.buf = appendJSONString(e.buf, Redacted)
		return nil
	}
	switch v := v.(type) {
	case ast.Null:
		e.buf = append(e.buf, "null"...)
	case ast.Boolean:
		e.buf = strconv.AppendBool(e.buf, bool(v))
	case ast.Number:
		e.buf = append(e.buf, v...)
	case ast.String:
		e.buf = appendJSONString(e.buf, string(v))
	case *ast.Array:
		e.buf = append(e.buf, '[')
		for i := range v.Len() {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.value(v.Elem(i).Value, n.index(i)); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
	case ast.Set:
		e.buf = append(e.buf, '[')
		first := true
		var err error
		v.Foreach(func(t *ast.Term) {
			if err != nil {
				return
			}
			if !first {
				e.buf = append(e.buf, ',')
			}
			first = false
			err = e.value(t.Value, nil)
		})
		if err != nil {
			return err
		}
		e.buf = append(e.buf, ']')
	case ast.Object:
		e.buf = append(e.buf, '{')
		first := true
		var err error
		v.Foreach(func(k, val *ast.Term) {
			if err != nil {
				return
			}
			ks, ok := k.Value.(ast.String)
			if !ok {
				err = fmt.Errorf("object key %v is not a string", k)
				return
			}
			if !first {
				e.buf = append(e.buf, ',')
			}
			first = false
			e.buf = appendJSONString(e.buf, string(ks))
			e.buf = append(e.buf, ':')
			err = e.value(val.Value, n.key(string(ks)))
		})
		if err != nil {
			return err
		}
		e.buf = append(e.buf, '}')
	default:
		return fmt.Errorf("%T cannot be written as JSON", v)
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
