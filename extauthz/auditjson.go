package extauthz

import (
	"encoding/base64"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/gavel-dev/gavel/policy"
)

// AppendAuditJSON writes the document for the audit trail straight from the
// CheckRequest (policy.AuditDocument): the same JSON as the whole value, with
// what r marks redacted, but without building that value. A decision the
// cache answered never built it, and recording one must not either: it is
// most of what a Check allocates.
func (d *envoyDocument) AppendAuditJSON(b []byte, r policy.Redaction) ([]byte, error) {
	if r.Whole() {
		return policy.AppendJSONString(b, policy.Redacted), nil
	}
	e := auditEncoder{b: append(b, '{')}
	e.key("attributes", true)
	if err := e.attributes(d, r.Key("attributes")); err != nil {
		return e.b, err
	}
	if d.body != nil {
		e.key("parsed_body", false)
		if err := e.value(d.body, r.Key("parsed_body")); err != nil {
			return e.b, err
		}
	}
	e.key("parsed_path", false)
	if err := e.value(d.path, r.Key("parsed_path")); err != nil {
		return e.b, err
	}
	e.key("parsed_query", false)
	e.query(d.rawQuery, r.Key("parsed_query"))
	if d.truncated != nil {
		e.key("truncated_body", false)
		if err := e.value(d.truncated.Value, r.Key("truncated_body")); err != nil {
			return e.b, err
		}
	}
	e.key("version", false)
	if vr := r.Key("version"); vr != (policy.Redaction{}) {
		if err := e.value(versionV3, vr); err != nil {
			return e.b, err
		}
	} else {
		e.b = append(e.b, `{"encoding":"protojson","ext_authz":"v3"}`...)
	}
	e.b = append(e.b, '}')
	return e.b, nil
}

// query writes parsed_query as parsedQuery builds it: each parameter to
// the array of its values.
func (e *auditEncoder) query(rawQuery string, r policy.Redaction) {
	if r.Whole() {
		e.redacted()
		return
	}
	values, _ := url.ParseQuery(rawQuery)
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.b = append(e.b, '{')
	for i, k := range keys {
		e.key(k, i == 0)
		kr := r.Key(k)
		if kr.Whole() {
			e.redacted()
			continue
		}
		e.b = append(e.b, '[')
		for j, v := range values[k] {
			if j > 0 {
				e.b = append(e.b, ',')
			}
			if kr.Index(j).Whole() {
				e.redacted()
			} else {
				e.b = policy.AppendJSONString(e.b, v)
			}
		}
		e.b = append(e.b, ']')
	}
	e.b = append(e.b, '}')
}

// attributes writes the attributes from the message, or from their
// protojson rendering when BuildInput made one (the message holds an Any).
func (e *auditEncoder) attributes(d *envoyDocument, r policy.Redaction) error {
	if d.rendered != nil {
		return e.value(d.rendered, r)
	}
	mark := len(e.b)
	err := e.message(d.attrs.ProtoReflect(), r)
	if !errors.Is(err, errNeedsProtojson) {
		return err
	}
	// needsProtojson said no, so this is not expected; the reference route
	// still gives the right document.
	e.b = e.b[:mark]
	v, err := attributesViaProtojson(d.attrs)
	if err != nil {
		return err
	}
	return e.value(v, r)
}

// auditEncoder appends the protojson rendering of messages as protoValue
// builds it (field names, 64-bit integers as strings, bytes as base64, enums
// by name, well-known types in their JSON forms), with map keys sorted, and
// redacts as it goes.
type auditEncoder struct{ b []byte }

func (e *auditEncoder) key(k string, first bool) {
	if !first {
		e.b = append(e.b, ',')
	}
	e.b = policy.AppendJSONString(e.b, k)
	e.b = append(e.b, ':')
}

func (e *auditEncoder) redacted() {
	e.b = policy.AppendJSONString(e.b, policy.Redacted)
}

func (e *auditEncoder) value(v ast.Value, r policy.Redaction) error {
	var err error
	e.b, err = policy.AppendValueJSON(e.b, v, r)
	return err
}

func (e *auditEncoder) message(m protoreflect.Message, r policy.Redaction) error {
	if r.Whole() {
		e.redacted()
		return nil
	}
	if len(e.b) > policy.MaxAuditInput {
		return policy.ErrAuditInputTooLarge
	}
	if ok, err := e.typed(m, r); ok {
		return err
	}
	if isWellKnown(m.Descriptor()) {
		// Timestamps, wrappers, Struct: small and rare enough to render
		// through their OPA value.
		v, err := protoValue(m)
		if err != nil {
			return err
		}
		return e.value(v, r)
	}
	e.b = append(e.b, '{')
	first := true
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue // protojson leaves out what is not populated
		}
		name := fd.JSONName()
		e.key(name, first)
		first = false
		fr := r.Key(name)
		var err error
		switch {
		case fr.Whole():
			e.redacted()
		case fd.IsMap():
			if sm, ok := stringMap(m, fd); ok {
				e.stringMap(sm, fr)
				break
			}
			err = e.mapField(fd, m.Get(fd).Map(), fr)
		case fd.IsList():
			err = e.list(fd, m.Get(fd).List(), fr)
		default:
			err = e.singular(fd, m.Get(fd), fr)
		}
		if err != nil {
			return err
		}
	}
	e.b = append(e.b, '}')
	return nil
}

func (e *auditEncoder) singular(fd protoreflect.FieldDescriptor, v protoreflect.Value, r policy.Redaction) error {
	if r.Whole() {
		e.redacted()
		return nil
	}
	if k := fd.Kind(); k == protoreflect.MessageKind || k == protoreflect.GroupKind {
		return e.message(v.Message(), r)
	}
	return e.scalar(fd, v)
}

type mapEntry struct {
	key string
	v   protoreflect.Value
}

func (e *auditEncoder) mapField(fd protoreflect.FieldDescriptor, m protoreflect.Map, r policy.Redaction) error {
	entries := make([]mapEntry, 0, m.Len())
	m.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		entries = append(entries, mapEntry{k.String(), v})
		return true
	})
	slices.SortFunc(entries, func(a, b mapEntry) int { return strings.Compare(a.key, b.key) })
	vd := fd.MapValue()
	e.b = append(e.b, '{')
	for i, en := range entries {
		e.key(en.key, i == 0)
		if err := e.singular(vd, en.v, r.Key(en.key)); err != nil {
			return err
		}
	}
	e.b = append(e.b, '}')
	return nil
}

// stringMap is the Go map behind a map<string, string> field reached
// through reflection: the context extensions every CheckRequest has (the
// headers and peer labels are written by the typed writers), read directly
// at no reflection cost per entry.
func stringMap(m protoreflect.Message, fd protoreflect.FieldDescriptor) (map[string]string, bool) {
	if x, ok := m.Interface().(*authv3.AttributeContext); ok && fd.Name() == "context_extensions" {
		return x.GetContextExtensions(), true
	}
	return nil, false
}

func (e *auditEncoder) stringMap(sm map[string]string, r policy.Redaction) {
	keys := make([]string, 0, len(sm))
	for k := range sm {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.b = append(e.b, '{')
	for i, k := range keys {
		e.key(k, i == 0)
		if r.Key(k).Whole() {
			e.redacted()
		} else {
			e.b = policy.AppendJSONString(e.b, sm[k])
		}
	}
	e.b = append(e.b, '}')
}

func (e *auditEncoder) list(fd protoreflect.FieldDescriptor, l protoreflect.List, r policy.Redaction) error {
	e.b = append(e.b, '[')
	for i := range l.Len() {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		if err := e.singular(fd, l.Get(i), r.Index(i)); err != nil {
			return err
		}
	}
	e.b = append(e.b, ']')
	return nil
}

// bytes writes a bytes field as protojson does: base64, padded.
func (e *auditEncoder) bytes(b []byte) {
	e.b = append(e.b, '"')
	e.b = base64.StdEncoding.AppendEncode(e.b, b)
	e.b = append(e.b, '"')
}

// scalar writes a scalar field as scalarValue renders it.
func (e *auditEncoder) scalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		e.b = strconv.AppendBool(e.b, v.Bool())
	case protoreflect.StringKind:
		e.b = policy.AppendJSONString(e.b, v.String())
	case protoreflect.BytesKind:
		e.bytes(v.Bytes())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		e.b = strconv.AppendInt(e.b, v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		e.b = strconv.AppendUint(e.b, v.Uint(), 10)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		e.b = append(e.b, '"')
		e.b = strconv.AppendInt(e.b, v.Int(), 10)
		e.b = append(e.b, '"')
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		e.b = append(e.b, '"')
		e.b = strconv.AppendUint(e.b, v.Uint(), 10)
		e.b = append(e.b, '"')
	default:
		// Floats, enums: as their OPA value.
		sv, err := scalarValue(fd, v)
		if err != nil {
			return err
		}
		return e.value(sv, policy.Redaction{})
	}
	return nil
}
