package extauthz

import (
	"encoding/base64"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// errNeedsProtojson marks a message the direct conversion does not handle
// (google.protobuf.Any, whose JSON form needs the type registry); the caller
// then goes through protojson.
var errNeedsProtojson = errors.New("message needs protojson")

// protoValue converts a message to the OPA value that protojson.Marshal
// followed by a JSON decode would give, without the JSON text in between:
// lowerCamel field names, populated fields only, 64-bit integers as strings,
// bytes as base64, enums by name, and the JSON forms of the well-known types.
// Tests hold it equal to the protojson route on generated messages.
func protoValue(m protoreflect.Message) (ast.Value, error) {
	switch m.Descriptor().FullName() {
	case "google.protobuf.Any":
		return nil, errNeedsProtojson
	case "google.protobuf.Timestamp":
		return timestampValue(m)
	case "google.protobuf.Duration":
		return durationValue(m)
	case "google.protobuf.Struct":
		return structValue(m)
	case "google.protobuf.Value":
		return jsonValue(m)
	case "google.protobuf.ListValue":
		return listValue(m)
	case "google.protobuf.Empty":
		return ast.NewObject(), nil
	case "google.protobuf.FieldMask":
		return nil, errNeedsProtojson
	case "google.protobuf.BoolValue", "google.protobuf.Int32Value", "google.protobuf.Int64Value",
		"google.protobuf.UInt32Value", "google.protobuf.UInt64Value", "google.protobuf.FloatValue",
		"google.protobuf.DoubleValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
		fd := m.Descriptor().Fields().ByNumber(1)
		return scalarValue(fd, m.Get(fd))
	}
	fields := make([][2]*ast.Term, 0, 8)
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		var val ast.Value
		switch {
		case fd.IsMap():
			val, err = mapValue(fd, v.Map())
		case fd.IsList():
			val, err = repeatedValue(fd, v.List())
		default:
			val, err = singularValue(fd, v)
		}
		if err != nil {
			return false
		}
		fields = append(fields, [2]*ast.Term{ast.StringTerm(fd.JSONName()), ast.NewTerm(val)})
		return true
	})
	if err != nil {
		return nil, err
	}
	return ast.NewObject(fields...), nil
}

func singularValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) (ast.Value, error) {
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		return protoValue(v.Message())
	}
	return scalarValue(fd, v)
}

func mapValue(fd protoreflect.FieldDescriptor, m protoreflect.Map) (ast.Value, error) {
	vd := fd.MapValue()
	pairs := make([][2]*ast.Term, 0, m.Len())
	var err error
	m.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		var val ast.Value
		if val, err = singularValue(vd, v); err != nil {
			return false
		}
		pairs = append(pairs, [2]*ast.Term{ast.StringTerm(k.String()), ast.NewTerm(val)})
		return true
	})
	if err != nil {
		return nil, err
	}
	return ast.NewObject(pairs...), nil
}

func repeatedValue(fd protoreflect.FieldDescriptor, l protoreflect.List) (ast.Value, error) {
	terms := make([]*ast.Term, l.Len())
	for i := range l.Len() {
		v, err := singularValue(fd, l.Get(i))
		if err != nil {
			return nil, err
		}
		terms[i] = ast.NewTerm(v)
	}
	return ast.NewArray(terms...), nil
}

func scalarValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) (ast.Value, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return ast.Boolean(v.Bool()), nil
	case protoreflect.StringKind:
		return ast.String(v.String()), nil
	case protoreflect.BytesKind:
		return ast.String(base64.StdEncoding.EncodeToString(v.Bytes())), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return ast.Number(strconv.FormatInt(v.Int(), 10)), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return ast.Number(strconv.FormatUint(v.Uint(), 10)), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return ast.String(strconv.FormatInt(v.Int(), 10)), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return ast.String(strconv.FormatUint(v.Uint(), 10)), nil
	case protoreflect.FloatKind:
		return floatValue(v.Float(), 32), nil
	case protoreflect.DoubleKind:
		return floatValue(v.Float(), 64), nil
	case protoreflect.EnumKind:
		if fd.Enum().FullName() == "google.protobuf.NullValue" {
			return ast.Null{}, nil
		}
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return ast.String(ev.Name()), nil
		}
		return ast.Number(strconv.FormatInt(int64(v.Enum()), 10)), nil
	}
	return nil, errNeedsProtojson
}

// floatValue formats like protojson (and encoding/json): NaN and the
// infinities as strings, exponent form only for very small or large values.
func floatValue(f float64, bits int) ast.Value {
	switch {
	case math.IsNaN(f):
		return ast.String("NaN")
	case math.IsInf(f, 1):
		return ast.String("Infinity")
	case math.IsInf(f, -1):
		return ast.String("-Infinity")
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	s := strconv.FormatFloat(f, format, -1, bits)
	if format == 'e' {
		// 1e-07 -> 1e-7, as encoding/json writes it.
		if n := len(s); n >= 4 && s[n-4] == 'e' && s[n-3] == '-' && s[n-2] == '0' {
			s = s[:n-2] + s[n-1:]
		}
	}
	return ast.Number(s)
}

func timestampValue(m protoreflect.Message) (ast.Value, error) {
	fields := m.Descriptor().Fields()
	secs := m.Get(fields.ByNumber(1)).Int()
	nanos := m.Get(fields.ByNumber(2)).Int()
	if secs < -62135596800 || secs > 253402300799 || nanos < 0 || nanos > 999999999 {
		return nil, errNeedsProtojson // protojson rejects it; let it say why
	}
	t := time.Unix(secs, nanos).UTC()
	s := t.Format("2006-01-02T15:04:05.000000000")
	s = strings.TrimSuffix(s, "000")
	s = strings.TrimSuffix(s, "000")
	s = strings.TrimSuffix(s, "000")
	s = strings.TrimSuffix(s, ".")
	return ast.String(s + "Z"), nil
}

func durationValue(m protoreflect.Message) (ast.Value, error) {
	fields := m.Descriptor().Fields()
	secs := m.Get(fields.ByNumber(1)).Int()
	nanos := m.Get(fields.ByNumber(2)).Int()
	if secs < -315576000000 || secs > 315576000000 || nanos <= -1e9 || nanos >= 1e9 ||
		(secs > 0 && nanos < 0) || (secs < 0 && nanos > 0) {
		return nil, errNeedsProtojson
	}
	neg := secs < 0 || nanos < 0
	if secs < 0 {
		secs = -secs
	}
	if nanos < 0 {
		nanos = -nanos
	}
	s := strconv.FormatInt(secs, 10)
	if nanos != 0 {
		frac := strconv.FormatInt(nanos+1e9, 10)[1:]
		frac = strings.TrimSuffix(frac, "000")
		frac = strings.TrimSuffix(frac, "000")
		s += "." + frac
	}
	if neg {
		s = "-" + s
	}
	return ast.String(s + "s"), nil
}

func structValue(m protoreflect.Message) (ast.Value, error) {
	fd := m.Descriptor().Fields().ByNumber(1)
	return mapValue(fd, m.Get(fd).Map())
}

func listValue(m protoreflect.Message) (ast.Value, error) {
	fd := m.Descriptor().Fields().ByNumber(1)
	return repeatedValue(fd, m.Get(fd).List())
}

func jsonValue(m protoreflect.Message) (ast.Value, error) {
	od := m.Descriptor().Oneofs().ByName("kind")
	fd := m.WhichOneof(od)
	if fd == nil {
		return nil, errNeedsProtojson // protojson refuses an empty Value
	}
	v := m.Get(fd)
	switch fd.Name() {
	case "null_value":
		return ast.Null{}, nil
	case "number_value":
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, errNeedsProtojson
		}
		return floatValue(f, 64), nil
	case "string_value":
		return ast.String(v.String()), nil
	case "bool_value":
		return ast.Boolean(v.Bool()), nil
	case "struct_value":
		return structValue(v.Message())
	case "list_value":
		return listValue(v.Message())
	}
	return nil, errNeedsProtojson
}

// needsProtojson reports whether protoValue cannot render m: it holds an
// Any, or a well-known value protojson would refuse (an out-of-range
// Timestamp, a NaN in a Struct). It visits only the fields whose types can
// hold such values, so for a usual CheckRequest it reads a timestamp and
// nothing else.
func needsProtojson(m protoreflect.Message) bool {
	md := m.Descriptor()
	if isWellKnown(md) {
		_, err := protoValue(m)
		return err != nil
	}
	for _, fd := range riskyFields(md) {
		if !m.Has(fd) {
			continue
		}
		v := m.Get(fd)
		switch {
		case fd.IsMap():
			needs := false
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				needs = needsProtojson(mv.Message())
				return !needs
			})
			if needs {
				return true
			}
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				if needsProtojson(l.Get(i).Message()) {
					return true
				}
			}
		default:
			if needsProtojson(v.Message()) {
				return true
			}
		}
	}
	return false
}

var riskyFieldsOf sync.Map // protoreflect.FullName -> []protoreflect.FieldDescriptor

// riskyFields lists the fields of a message type whose values can hold
// what protoValue does not render (message fields, or maps of messages,
// whose types may).
func riskyFields(md protoreflect.MessageDescriptor) []protoreflect.FieldDescriptor {
	if v, ok := riskyFieldsOf.Load(md.FullName()); ok {
		return v.([]protoreflect.FieldDescriptor)
	}
	var out []protoreflect.FieldDescriptor
	fields := md.Fields()
	for i := range fields.Len() {
		fd, vd := fields.Get(i), fields.Get(i)
		if fd.IsMap() {
			vd = fd.MapValue()
		}
		if (vd.Kind() == protoreflect.MessageKind || vd.Kind() == protoreflect.GroupKind) && mayNeedProtojson(vd.Message()) {
			out = append(out, fd)
		}
	}
	riskyFieldsOf.Store(md.FullName(), out)
	return out
}

var riskyTypes sync.Map // protoreflect.FullName -> bool

// mayNeedProtojson reports whether a message type can hold a value that
// protoValue does not render: a well-known type other than the wrappers and
// Empty, at any depth. Only finished answers are cached: a type still being
// worked out (on a cycle, or by another goroutine) is never read as safe.
func mayNeedProtojson(md protoreflect.MessageDescriptor) bool {
	if v, ok := riskyTypes.Load(md.FullName()); ok {
		return v.(bool)
	}
	risky := reachesRisky(md, map[protoreflect.FullName]bool{})
	riskyTypes.Store(md.FullName(), risky)
	return risky
}

// reachesRisky reports whether a risky well-known type is reachable from
// md; visited breaks cycles (a type on the path adds nothing new).
func reachesRisky(md protoreflect.MessageDescriptor, visited map[protoreflect.FullName]bool) bool {
	if isWellKnown(md) {
		switch md.FullName() {
		case "google.protobuf.Empty", "google.protobuf.BoolValue", "google.protobuf.Int32Value",
			"google.protobuf.Int64Value", "google.protobuf.UInt32Value", "google.protobuf.UInt64Value",
			"google.protobuf.FloatValue", "google.protobuf.DoubleValue", "google.protobuf.StringValue",
			"google.protobuf.BytesValue":
			return false
		}
		return true
	}
	if visited[md.FullName()] {
		return false
	}
	visited[md.FullName()] = true
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.IsMap() {
			fd = fd.MapValue()
		}
		if (fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind) && reachesRisky(fd.Message(), visited) {
			return true
		}
	}
	return false
}
