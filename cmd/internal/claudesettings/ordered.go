package claudesettings

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// node is a JSON value that keeps the order of object keys (and duplicate
// keys), so that a settings file comes back with its keys where they were.
// Scalars keep their original text.
type node struct {
	kind byte // '{' object, '[' array, 0 scalar
	keys []string
	vals []*node
	raw  []byte
}

// SyntaxError says where a settings file is not valid JSON.
type SyntaxError struct {
	Offset     int64 // byte offset of the error
	Line, Col  int   // 1-based position of the error
	Msg        string
	underlying error
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at line %d, column %d (byte %d): %s", e.Line, e.Col, e.Offset, e.Msg)
}

func (e *SyntaxError) Unwrap() error { return e.underlying }

// parseDoc parses a settings document, which must be a JSON object. Empty
// input (or only white space) is an empty object.
func parseDoc(b []byte) (*node, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return &node{kind: '{'}, nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := position(b, se.Offset)
			return nil, &SyntaxError{Offset: se.Offset, Line: line, Col: col, Msg: se.Error(), underlying: err}
		}
		return nil, err
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, errors.New("the settings are not a JSON object")
	}
	return parse(b)
}

// position turns a byte offset into a 1-based line and column.
func position(b []byte, off int64) (int, int) {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	before := b[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - (bytes.LastIndexByte(before, '\n') + 1)
	if col < 1 {
		col = 1
	}
	return line, col
}

// parse builds the tree of a valid JSON value.
func parse(b []byte) (*node, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, errors.New("empty JSON value")
	}
	if b[0] != '{' && b[0] != '[' {
		return &node{raw: append([]byte(nil), b...)}, nil
	}
	n := &node{kind: b[0]}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	for dec.More() {
		if n.kind == '{' {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, _ := tok.(string)
			n.keys = append(n.keys, key)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		child, err := parse(raw)
		if err != nil {
			return nil, err
		}
		n.vals = append(n.vals, child)
	}
	return n, nil
}

// get returns the value of key in an object (the last one, as JSON parsers
// do with duplicates), or nil.
func (n *node) get(key string) *node {
	if n == nil || n.kind != '{' {
		return nil
	}
	for i := len(n.keys) - 1; i >= 0; i-- {
		if n.keys[i] == key {
			return n.vals[i]
		}
	}
	return nil
}

// set replaces the value of key, or appends key.
func (n *node) set(key string, v *node) {
	for i := len(n.keys) - 1; i >= 0; i-- {
		if n.keys[i] == key {
			n.vals[i] = v
			return
		}
	}
	n.keys = append(n.keys, key)
	n.vals = append(n.vals, v)
}

// del removes every member named key.
func (n *node) del(key string) {
	keys, vals := n.keys[:0], n.vals[:0]
	for i, k := range n.keys {
		if k != key {
			keys = append(keys, k)
			vals = append(vals, n.vals[i])
		}
	}
	n.keys, n.vals = keys, vals
}

// str returns a scalar string's value, and whether n is one.
func (n *node) str() (string, bool) {
	if n == nil || n.kind != 0 || len(n.raw) == 0 || n.raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(n.raw, &s) != nil {
		return "", false
	}
	return s, true
}

// scalar makes a node of a Go value.
func scalar(v any) *node {
	b, err := marshal(v)
	if err != nil {
		panic(err) // only strings, numbers and booleans come here
	}
	return &node{raw: b}
}

func stringArray(ss []string) *node {
	n := &node{kind: '['}
	for _, s := range ss {
		n.vals = append(n.vals, scalar(s))
	}
	return n
}

// object makes an object of alternating keys and values.
func object(kv ...any) *node {
	n := &node{kind: '{'}
	for i := 0; i < len(kv); i += 2 {
		v, ok := kv[i+1].(*node)
		if !ok {
			v = scalar(kv[i+1])
		}
		n.keys = append(n.keys, kv[i].(string))
		n.vals = append(n.vals, v)
	}
	return n
}

func array(vs ...*node) *node { return &node{kind: '[', vals: vs} }

// marshal is json.Marshal without HTML escaping.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// encode writes n indented by two spaces, the way Claude Code writes its
// settings files, with a final newline.
func (n *node) encode() []byte {
	var buf bytes.Buffer
	n.write(&buf, "")
	buf.WriteByte('\n')
	return buf.Bytes()
}

func (n *node) write(buf *bytes.Buffer, indent string) {
	if n.kind == 0 {
		buf.Write(n.raw)
		return
	}
	open, close := byte('{'), byte('}')
	if n.kind == '[' {
		open, close = '[', ']'
	}
	buf.WriteByte(open)
	if len(n.vals) == 0 {
		buf.WriteByte(close)
		return
	}
	inner := indent + "  "
	for i, v := range n.vals {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
		buf.WriteString(inner)
		if n.kind == '{' {
			k, _ := marshal(n.keys[i])
			buf.Write(k)
			buf.WriteString(": ")
		}
		v.write(buf, inner)
	}
	buf.WriteByte('\n')
	buf.WriteString(indent)
	buf.WriteByte(close)
}
