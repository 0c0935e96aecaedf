package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Key identifies a cached decision: the sha256 of the bundle revision, the
// entry point and the canonical encoding of every declared key value.
type Key [sha256.Size]byte

// Value tags of the canonical encoding.
const (
	tagAbsent byte = iota
	tagNull
	tagFalse
	tagTrue
	tagNumber
	tagString
	tagArray
	tagObject
	tagSet
)

// cacheKey hashes the values the entry point reads. A path that is absent
// from the input encodes differently from every present value, including
// null.
func cacheKey(revision, entry string, paths []ast.Ref, in Input) (Key, error) {
	vals, err := findValues(paths, in)
	if err != nil {
		return Key{}, err
	}
	return hashKey(revision, entry, vals), nil
}

// findValues reads each path (below input) from in; nil stands for absent.
func findValues(paths []ast.Ref, in Input) ([]ast.Value, error) {
	vals := make([]ast.Value, len(paths))
	for i, p := range paths {
		v, ok, err := in.Find(p[1:])
		if err != nil {
			return nil, err
		}
		if ok {
			vals[i] = v
		}
	}
	return vals, nil
}

// hashKey is the key of values found for an entry point of a revision.
func hashKey(revision, entry string, vals []ast.Value) Key {
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	e.b = e.b[:0]
	e.str(revision)
	e.str(entry)
	for _, v := range vals {
		if v == nil {
			e.tag(tagAbsent)
			continue
		}
		e.value(v)
	}
	if cap(e.b) > 64<<10 {
		defer func() { e.b = nil }() // do not pool what a huge body grew
	}
	return sha256.Sum256(e.b)
}

var encoders = sync.Pool{New: func() any { return &encoder{b: make([]byte, 0, 512)} }}

// encoder writes the canonical encoding of values: a type tag, then
// length-prefixed content, so no two different values share an encoding.
type encoder struct {
	b []byte
}

func (e *encoder) tag(t byte) { e.b = append(e.b, t) }

func (e *encoder) len(n int) { e.b = binary.BigEndian.AppendUint64(e.b, uint64(n)) }

func (e *encoder) str(s string) {
	e.len(len(s))
	e.b = append(e.b, s...)
}

func (e *encoder) value(v ast.Value) {
	switch v := v.(type) {
	case ast.Null:
		e.tag(tagNull)
	case ast.Boolean:
		if v {
			e.tag(tagTrue)
		} else {
			e.tag(tagFalse)
		}
	case ast.Number:
		// The number's text, as the policy sees it: equal numbers may encode
		// apart (1 and 1.0), which costs a miss, never a wrong hit. They must
		// not be normalised: a policy can tell 1 from 1.0 and 0 from -0
		// (json.marshal, or the value passed through into its decision).
		e.tag(tagNumber)
		e.str(v.String())
	case ast.String:
		e.tag(tagString)
		e.str(string(v))
	case *ast.Array:
		e.tag(tagArray)
		e.len(v.Len())
		for i := range v.Len() {
			e.value(v.Elem(i).Value)
		}
	case ast.Object:
		e.tag(tagObject)
		keys := slices.Clone(v.Keys())
		slices.SortFunc(keys, func(a, b *ast.Term) int { return a.Value.Compare(b.Value) })
		e.len(len(keys))
		for _, k := range keys {
			e.value(k.Value)
			e.value(v.Get(k).Value)
		}
	case ast.Set:
		e.tag(tagSet)
		elems := v.Sorted()
		e.len(elems.Len())
		for i := range elems.Len() {
			e.value(elems.Elem(i).Value)
		}
	default:
		// Not a JSON value (a ref, a var): encode its text, which is unique
		// for a given value.
		e.tag(0xff)
		e.str(v.String())
	}
}
