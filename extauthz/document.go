package extauthz

import (
	"sync"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/gavel-dev/gavel/policy"
)

// envoyDocument is the OPA-Envoy input of one CheckRequest. parsed_path and
// parsed_body are built up front (they are what a cache key usually reads,
// and a path that does not parse is a bad request); parsed_query is built
// on first use; attributes, the expensive part, is rendered only when the
// whole document is needed (a cache miss), and a cache key reads single
// attributes paths straight from the message.
type envoyDocument struct {
	attrs    *authv3.AttributeContext
	rendered ast.Value // attributes rendered through protojson up front, when needed
	path     ast.Value
	rawQuery string
	body     ast.Value // nil: parsed_body is absent
	// truncated is truncated_body; nil when body parsing is skipped.
	truncated *ast.Term

	queryOnce sync.Once
	query     ast.Value

	once sync.Once
	full ast.Value
	err  error
}

// Top-level keys of the document.
var (
	attributesKey    = ast.StringTerm("attributes")
	parsedPathKey    = ast.StringTerm("parsed_path")
	parsedQueryKey   = ast.StringTerm("parsed_query")
	parsedBodyKey    = ast.StringTerm("parsed_body")
	truncatedBodyKey = ast.StringTerm("truncated_body")
	versionKey       = ast.StringTerm("version")
)

func (d *envoyDocument) parsedQuery() ast.Value {
	d.queryOnce.Do(func() { d.query = parsedQuery(d.rawQuery) })
	return d.query
}

func (d *envoyDocument) attributes() (ast.Value, error) {
	if d.rendered != nil {
		return d.rendered, nil
	}
	return attributesValue(d.attrs)
}

func (d *envoyDocument) Value() (ast.Value, error) {
	d.once.Do(func() {
		attrs, err := d.attributes()
		if err != nil {
			d.err = err
			return
		}
		fields := make([][2]*ast.Term, 0, 6)
		fields = append(fields,
			[2]*ast.Term{attributesKey, ast.NewTerm(attrs)},
			[2]*ast.Term{parsedPathKey, ast.NewTerm(d.path)},
			[2]*ast.Term{parsedQueryKey, ast.NewTerm(d.parsedQuery())},
			[2]*ast.Term{versionKey, ast.NewTerm(versionV3)},
		)
		if d.body != nil {
			fields = append(fields, [2]*ast.Term{parsedBodyKey, ast.NewTerm(d.body)})
		}
		if d.truncated != nil {
			fields = append(fields, [2]*ast.Term{truncatedBodyKey, d.truncated})
		}
		d.full = ast.NewObject(fields...)
	})
	return d.full, d.err
}

func (d *envoyDocument) Find(path ast.Ref) (ast.Value, bool, error) {
	if len(path) == 0 {
		v, err := d.Value()
		return v, err == nil, err
	}
	var top ast.Value
	switch key := path[0]; {
	case key.Equal(attributesKey):
		if d.rendered == nil {
			if v, ok, handled := httpFind(d.attrs, path[1:]); handled {
				return v, ok, nil
			}
			return protoFind(d.attrs.ProtoReflect(), path[1:])
		}
		top = d.rendered
	case key.Equal(parsedPathKey):
		top = d.path
	case key.Equal(parsedQueryKey):
		top = d.parsedQuery()
	case key.Equal(parsedBodyKey):
		top = d.body
	case key.Equal(truncatedBodyKey) && d.truncated != nil:
		top = d.truncated.Value
	case key.Equal(versionKey):
		top = versionV3
	}
	if top == nil {
		return nil, false, nil
	}
	v, ok := policy.FindValue(top, path[1:])
	return v, ok, nil
}

// httpFind reads the paths cache keys use most, request.http's strings and
// headers, from the generated struct; handled is false for every other path,
// which protoFind reads by reflection. It follows protojson: an empty string
// field is absent, a header present with an empty value is "".
func httpFind(attrs *authv3.AttributeContext, path ast.Ref) (v ast.Value, found, handled bool) {
	if len(path) < 3 || !path[0].Equal(requestKey) || !path[1].Equal(httpKey) {
		return nil, false, false
	}
	field, ok := path[2].Value.(ast.String)
	if !ok {
		return nil, false, true // an object has no index
	}
	h := attrs.GetRequest().GetHttp()
	rest := path[3:]
	var s string
	switch field {
	case "method":
		s = h.GetMethod()
	case "path":
		s = h.GetPath()
	case "host":
		s = h.GetHost()
	case "scheme":
		s = h.GetScheme()
	case "protocol":
		s = h.GetProtocol()
	case "id":
		s = h.GetId()
	case "headers":
		if len(rest) != 1 {
			return nil, false, false // the whole map, or below a value
		}
		name, ok := rest[0].Value.(ast.String)
		if !ok {
			return nil, false, true
		}
		hv, ok := h.GetHeaders()[string(name)]
		if !ok {
			return nil, false, true
		}
		return ast.String(hv), true, true
	default:
		return nil, false, false
	}
	if s == "" || len(rest) > 0 {
		return nil, false, true
	}
	return ast.String(s), true, true
}

var (
	requestKey = ast.StringTerm("request")
	httpKey    = ast.StringTerm("http")
)

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
