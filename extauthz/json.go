package extauthz

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// parseJSON decodes a JSON document straight into an OPA value. It accepts
// and rejects exactly what OPA's util.UnmarshalJSON (encoding/json with
// UseNumber) followed by ast.InterfaceToValue does, and gives the same
// value: numbers keep their text, invalid UTF-8 and lone surrogates become
// U+FFFD, a repeated object key keeps its last value. Tests hold it to that
// on generated and fuzzed documents.
func parseJSON(data []byte) (ast.Value, error) {
	p := jsonParser{data: data}
	p.space()
	if p.i >= len(p.data) {
		return nil, errors.New("empty JSON document")
	}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	// OPA's decoder reads one more token after the value and refuses it
	// unless it is the end or a null, after which nothing more is read.
	p.space()
	if p.i < len(p.data) && !bytes.HasPrefix(p.data[p.i:], []byte("null")) {
		return nil, p.errorf("invalid character %q after top-level value", p.data[p.i])
	}
	return v, nil
}

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

type jsonParser struct {
	data []byte
	i    int
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("JSON at offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *jsonParser) space() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (ast.Value, error) {
	if p.i >= len(p.data) {
		return nil, p.errorf("unexpected end of JSON input")
	}
	switch c := p.data[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		return ast.String(s), nil
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true", ast.Boolean(true))
	case c == 'f':
		return p.literal("false", ast.Boolean(false))
	case c == 'n':
		return p.literal("null", ast.Null{})
	default:
		return nil, p.errorf("invalid character %q looking for beginning of value", c)
	}
}

func (p *jsonParser) literal(word string, v ast.Value) (ast.Value, error) {
	if len(p.data)-p.i < len(word) || string(p.data[p.i:p.i+len(word)]) != word {
		return nil, p.errorf("invalid literal, want %s", word)
	}
	p.i += len(word)
	return v, nil
}

func (p *jsonParser) object(depth int) (ast.Value, error) {
	if depth > maxJSONDepth {
		return nil, p.errorf("exceeded max depth")
	}
	p.i++ // {
	obj := ast.NewObject()
	p.space()
	if p.i < len(p.data) && p.data[p.i] == '}' {
		p.i++
		return obj, nil
	}
	for {
		p.space()
		if p.i >= len(p.data) || p.data[p.i] != '"' {
			return nil, p.errorf("want an object key")
		}
		k, err := p.string()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.data) || p.data[p.i] != ':' {
			return nil, p.errorf("want ':' after object key")
		}
		p.i++
		p.space()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		obj.Insert(ast.StringTerm(k), ast.NewTerm(v)) // a repeated key keeps its last value
		if done, err := p.next('}', "object value"); err != nil {
			return nil, err
		} else if done {
			return obj, nil
		}
	}
}

// next reads the ',' or the closing byte that follows an element; done
// reports the closing byte.
func (p *jsonParser) next(closing byte, after string) (done bool, err error) {
	p.space()
	if p.i >= len(p.data) {
		return false, p.errorf("unexpected end of JSON input")
	}
	switch p.data[p.i] {
	case ',':
		p.i++
		return false, nil
	case closing:
		p.i++
		return true, nil
	}
	return false, p.errorf("invalid character %q after %s", p.data[p.i], after)
}

func (p *jsonParser) array(depth int) (ast.Value, error) {
	if depth > maxJSONDepth {
		return nil, p.errorf("exceeded max depth")
	}
	p.i++ // [
	var terms []*ast.Term
	p.space()
	if p.i < len(p.data) && p.data[p.i] == ']' {
		p.i++
		return ast.NewArray(), nil
	}
	for {
		p.space()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		terms = append(terms, ast.NewTerm(v))
		if done, err := p.next(']', "array element"); err != nil {
			return nil, err
		} else if done {
			return ast.NewArray(terms...), nil
		}
	}
}

// number checks the JSON number grammar and keeps the text.
func (p *jsonParser) number() (ast.Value, error) {
	start := p.i
	d := p.data
	if d[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(d) && d[p.i] == '0':
		p.i++
	case p.i < len(d) && '1' <= d[p.i] && d[p.i] <= '9':
		for p.i < len(d) && '0' <= d[p.i] && d[p.i] <= '9' {
			p.i++
		}
	default:
		return nil, p.errorf("invalid number")
	}
	if p.i < len(d) && d[p.i] == '.' {
		p.i++
		if p.i >= len(d) || d[p.i] < '0' || d[p.i] > '9' {
			return nil, p.errorf("invalid number: digits must follow '.'")
		}
		for p.i < len(d) && '0' <= d[p.i] && d[p.i] <= '9' {
			p.i++
		}
	}
	if p.i < len(d) && (d[p.i] == 'e' || d[p.i] == 'E') {
		p.i++
		if p.i < len(d) && (d[p.i] == '+' || d[p.i] == '-') {
			p.i++
		}
		if p.i >= len(d) || d[p.i] < '0' || d[p.i] > '9' {
			return nil, p.errorf("invalid number: digits must follow the exponent")
		}
		for p.i < len(d) && '0' <= d[p.i] && d[p.i] <= '9' {
			p.i++
		}
	}
	n, err := ast.NumberChecked(string(d[start:p.i]))
	if err != nil {
		return nil, p.errorf("%v", err) // an exponent too large for OPA
	}
	return n, nil
}

// string reads a quoted string as encoding/json unquotes it.
func (p *jsonParser) string() (string, error) {
	p.i++ // opening quote
	start := p.i
	d := p.data
	// Fast path: no escapes, plain ASCII or valid UTF-8.
	for p.i < len(d) {
		c := d[p.i]
		if c == '"' {
			s := d[start:p.i]
			p.i++
			if utf8.Valid(s) {
				return string(s), nil
			}
			return string(replaceInvalid(s)), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.errorf("invalid character %q in string literal", c)
		}
		p.i++
	}
	if p.i >= len(d) {
		return "", p.errorf("unexpected end of JSON input in string")
	}
	// Slow path: escapes.
	buf := make([]byte, 0, p.i-start+16)
	buf = append(buf, replaceInvalid(d[start:p.i])...)
	for p.i < len(d) {
		c := d[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", p.errorf("invalid character %q in string literal", c)
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d[p.i:]) // an invalid byte is U+FFFD
			buf = utf8.AppendRune(buf, r)
			p.i += size
			continue
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		p.i++ // backslash
		if p.i >= len(d) {
			break
		}
		e := d[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.errorf("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A high surrogate followed by a low one is one rune;
				// anything else is U+FFFD, as encoding/json decodes it.
				if r2, ok := p.peekSurrogate(); ok {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						p.i += 6
						buf = utf8.AppendRune(buf, dec)
						break
					}
				}
				r = utf8.RuneError
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.errorf("invalid escape \\%c in string literal", e)
		}
	}
	return "", p.errorf("unexpected end of JSON input in string")
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.data)-p.i < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.data[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}

// peekSurrogate reads a following \uXXXX without consuming it.
func (p *jsonParser) peekSurrogate() (rune, bool) {
	d := p.data
	if len(d)-p.i < 6 || d[p.i] != '\\' || d[p.i+1] != 'u' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(d[p.i+2:p.i+6]), 16, 32)
	if err != nil {
		return 0, false
	}
	return rune(n), true
}

// replaceInvalid replaces each byte that is not part of valid UTF-8 with
// U+FFFD, as encoding/json does.
func replaceInvalid(s []byte) []byte {
	if utf8.Valid(s) {
		return s
	}
	out := make([]byte, 0, len(s)+8)
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, s[:size]...)
		}
		s = s[size:]
	}
	return out
}
