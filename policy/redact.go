package policy

import (
	"errors"
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
// sensitive replaced by "[REDACTED]": RedactedInput with
// NewRedaction(sensitive).
func AuditInput(in Input, sensitive []ast.Ref) ([]byte, error) {
	return RedactedInput(in, NewRedaction(sensitive))
}

// RedactedInput is the input as JSON for the audit trail, with what r marks
// replaced by "[REDACTED]". It returns nil when the input is larger than
// MaxAuditInput. A Document that is also an [AuditDocument] writes itself,
// without building its OPA value; any other is encoded from its value,
// redacting as it goes, without building Go maps on the way.
func RedactedInput(in Input, r Redaction) ([]byte, error) {
	if in.doc == nil {
		return nil, nil
	}
	buf := make([]byte, 0, 2048)
	var err error
	if ad, ok := in.doc.(AuditDocument); ok {
		buf, err = ad.AppendAuditJSON(buf, r)
	} else {
		var v ast.Value
		if v, err = in.doc.Value(); err != nil || v == nil {
			return nil, err
		}
		buf, err = AppendValueJSON(buf, v, r)
	}
	switch {
	case errors.Is(err, ErrAuditInputTooLarge):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("audit input: %w", err)
	case len(buf) > MaxAuditInput:
		return nil, nil
	}
	return buf, nil
}

// AuditDocument is a Document that writes itself as the audit trail's JSON
// straight from what it was built from, the same document its Value holds
// (object keys in any order), with what r marks redacted. AuditInput uses it
// so that recording a decision the cache answered never builds the whole
// input value.
type AuditDocument interface {
	Document
	// AppendAuditJSON appends the document to b. It may stop early with
	// ErrAuditInputTooLarge once b is past MaxAuditInput.
	AppendAuditJSON(b []byte, r Redaction) ([]byte, error)
}

// ErrAuditInputTooLarge stops an encoding past MaxAuditInput.
var ErrAuditInputTooLarge = errors.New("audit input larger than the limit")

// Redaction is a set of sensitive input paths, and a position in it for an
// encoder walking a document: Whole says the value here is redacted, Key
// and Index step into an object member or an array element. The zero
// Redaction redacts nothing. It never changes once built, so one is shared
// by every decision of an entry point.
type Redaction struct{ n *redactNode }

// NewRedaction builds the set of paths (input.a.b, as METADATA's sensitive
// lists them).
func NewRedaction(paths []ast.Ref) Redaction {
	var root *redactNode
	for _, ref := range paths {
		if len(ref) > 0 {
			root = root.add(ref[1:])
		}
	}
	return Redaction{root}
}

// Whole reports whether the value at this position is replaced by
// "[REDACTED]".
func (r Redaction) Whole() bool { return r.n != nil && r.n.leaf }

// Key is the position of object member k.
func (r Redaction) Key(k string) Redaction { return Redaction{r.n.key(k)} }

// Index is the position of array element i.
func (r Redaction) Index(i int) Redaction { return Redaction{r.n.index(i)} }

// AppendValueJSON appends v as JSON with what r marks redacted. It stops
// with ErrAuditInputTooLarge once b is past MaxAuditInput.
func AppendValueJSON(b []byte, v ast.Value, r Redaction) ([]byte, error) {
	e := jsonEncoder{buf: b}
	if err := e.value(v, r.n); err != nil {
		return e.buf, err
	}
	if e.over {
		return e.buf, ErrAuditInputTooLarge
	}
	return e.buf, nil
}

// AppendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func AppendJSONString(b []byte, s string) []byte { return appendJSONString(b, s) }

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
