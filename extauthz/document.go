package extauthz

import (
	"sync"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/gavel-dev/gavel/policy"
)

// envoyDocument is the OPA-Envoy input of one CheckRequest. The top-level
// parsed_* fields are built up front; attributes, the expensive part, is
// built only when the whole document is needed (a cache miss). A cache key
// reads single attributes paths straight from the message.
type envoyDocument struct {
	attrs *authv3.AttributeContext
	top   [][2]*ast.Term // every top-level field but attributes
	topV  ast.Object

	once sync.Once
	full ast.Value
	err  error
}

var attributesKey = ast.StringTerm("attributes")

func newEnvoyDocument(attrs *authv3.AttributeContext, top [][2]*ast.Term) *envoyDocument {
	return &envoyDocument{attrs: attrs, top: top, topV: ast.NewObject(top...)}
}

func (d *envoyDocument) Value() (ast.Value, error) {
	d.once.Do(func() {
		attrs, err := attributesValue(d.attrs)
		if err != nil {
			d.err = err
			return
		}
		fields := make([][2]*ast.Term, 0, len(d.top)+1)
		fields = append(fields, [2]*ast.Term{attributesKey, ast.NewTerm(attrs)})
		fields = append(fields, d.top...)
		d.full = ast.NewObject(fields...)
	})
	return d.full, d.err
}

func (d *envoyDocument) Find(path ast.Ref) (ast.Value, bool, error) {
	if len(path) == 0 {
		v, err := d.Value()
		return v, err == nil, err
	}
	if !path[0].Equal(attributesKey) {
		v, ok := policy.FindValue(d.topV, path)
		return v, ok, nil
	}
	return protoFind(d.attrs.ProtoReflect(), path[1:])
}

// protoFind is the value at path below m's protojson rendering, read from
// the message without rendering the rest of it.
func protoFind(m protoreflect.Message, path ast.Ref) (ast.Value, bool, error) {
	for len(path) > 0 {
		if isWellKnown(m.Descriptor()) {
			break
		}
		name, ok := path[0].Value.(ast.String)
		if !ok {
			return nil, false, nil // an object has no index
		}
		fd := m.Descriptor().Fields().ByJSONName(string(name))
		if fd == nil || !m.Has(fd) {
			return nil, false, nil
		}
		v := m.Get(fd)
		rest := path[1:]
		switch {
		case fd.IsMap() && fd.MapKey().Kind() == protoreflect.StringKind && len(rest) > 0:
			key, ok := rest[0].Value.(ast.String)
			if !ok {
				return nil, false, nil
			}
			mv := v.Map().Get(protoreflect.ValueOfString(string(key)).MapKey())
			if !mv.IsValid() {
				return nil, false, nil
			}
			if vd := fd.MapValue(); vd.Kind() == protoreflect.MessageKind {
				m, path = mv.Message(), rest[1:]
				continue
			}
			return scalarAt(fd.MapValue(), mv, rest[1:])
		case fd.IsMap() || fd.IsList():
			return valueAt(func() (ast.Value, error) {
				if fd.IsMap() {
					return mapValue(fd, v.Map())
				}
				return repeatedValue(fd, v.List())
			}, rest)
		case fd.Kind() == protoreflect.MessageKind:
			m, path = v.Message(), rest
		default:
			return scalarAt(fd, v, rest)
		}
	}
	return valueAt(func() (ast.Value, error) { return protoValue(m) }, path)
}

func scalarAt(fd protoreflect.FieldDescriptor, v protoreflect.Value, rest ast.Ref) (ast.Value, bool, error) {
	return valueAt(func() (ast.Value, error) { return scalarValue(fd, v) }, rest)
}

// valueAt renders a subtree and looks up the rest of the path in it.
func valueAt(render func() (ast.Value, error), rest ast.Ref) (ast.Value, bool, error) {
	v, err := render()
	if err != nil {
		return nil, false, err
	}
	found, ok := policy.FindValue(v, rest)
	return found, ok, nil
}

func isWellKnown(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile().Package() == "google.protobuf"
}
