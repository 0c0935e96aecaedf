package extauthz

import (
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/gavel-dev/gavel/policy"
)

// The messages every CheckRequest carries (the HTTP request, the two
// peers and their socket addresses) are written here through their
// generated fields, not through protoreflect: a Check that is recorded
// renders them each time, and reflection (a Has and a Get per field, a key
// escaped per member) was most of that. They write what message writes for
// them, field for field; TestTypedWritersKnowEveryField holds the fields
// each one writes to the descriptors, so a field added to one of these
// messages by a newer go-control-plane is caught, not silently left out.

// typed writes m through its generated fields when it is one of the
// messages above; ok is false for any other message, and for an address
// in a form the typed writers leave to message.
func (e *auditEncoder) typed(m protoreflect.Message, r policy.Redaction) (ok bool, err error) {
	switch x := m.Interface().(type) {
	case *authv3.AttributeContext_HttpRequest:
		return true, e.httpRequest(x, r)
	case *authv3.AttributeContext_Peer:
		return true, e.peer(x, r)
	case *corev3.Address:
		sa := x.GetSocketAddress()
		_, named := sa.GetPortSpecifier().(*corev3.SocketAddress_NamedPort)
		if sa == nil || named || sa.GetProtocol() != corev3.SocketAddress_TCP {
			return false, nil // a pipe, an internal address, UDP, a named port: rare, left to reflection
		}
		o := e.object()
		if m := o.field("socketAddress", r); m.write {
			e.socketAddress(sa, m.r)
		}
		e.b = append(e.b, '}')
		return true, nil
	}
	return false, nil
}

// objectWriter writes the members of one JSON object. Member names are the
// JSON names of generated fields, plain ASCII, written without escaping.
type objectWriter struct {
	e     *auditEncoder
	first bool
}

// object starts a JSON object; the caller closes it.
func (e *auditEncoder) object() objectWriter {
	e.b = append(e.b, '{')
	return objectWriter{e: e, first: true}
}

// member says where a member's value goes: write is false when the value
// is redacted (and written already); r is the redaction inside the value.
type member struct {
	write bool
	r     policy.Redaction
}

// field writes the member's name, and "[REDACTED]" when r redacts it.
func (o *objectWriter) field(name string, r policy.Redaction) member {
	e := o.e
	if !o.first {
		e.b = append(e.b, ',')
	}
	o.first = false
	e.b = append(e.b, '"')
	e.b = append(e.b, name...)
	e.b = append(e.b, '"', ':')
	fr := r.Key(name)
	if fr.Whole() {
		e.redacted()
		return member{}
	}
	return member{write: true, r: fr}
}

// str writes a string field, left out when empty as protojson does.
func (o *objectWriter) str(name, v string, r policy.Redaction) {
	if v == "" {
		return
	}
	if m := o.field(name, r); m.write {
		o.e.b = policy.AppendJSONString(o.e.b, v)
	}
}

func (e *auditEncoder) httpRequest(x *authv3.AttributeContext_HttpRequest, r policy.Redaction) error {
	if len(e.b) > policy.MaxAuditInput {
		return policy.ErrAuditInputTooLarge
	}
	o := e.object()
	o.str("id", x.Id, r)
	o.str("method", x.Method, r)
	if len(x.Headers) > 0 {
		if m := o.field("headers", r); m.write {
			e.stringMap(x.Headers, m.r)
		}
	}
	if x.HeaderMap != nil {
		if m := o.field("headerMap", r); m.write {
			if err := e.message(x.HeaderMap.ProtoReflect(), m.r); err != nil {
				return err
			}
		}
	}
	o.str("path", x.Path, r)
	o.str("host", x.Host, r)
	o.str("scheme", x.Scheme, r)
	o.str("query", x.Query, r)
	o.str("fragment", x.Fragment, r)
	if x.Size != 0 {
		if m := o.field("size", r); m.write { // int64: a string in protojson
			e.b = append(e.b, '"')
			e.b = strconv.AppendInt(e.b, x.Size, 10)
			e.b = append(e.b, '"')
		}
	}
	o.str("protocol", x.Protocol, r)
	o.str("body", x.Body, r)
	if len(x.RawBody) > 0 {
		if m := o.field("rawBody", r); m.write {
			e.bytes(x.RawBody)
		}
	}
	e.b = append(e.b, '}')
	return nil
}

func (e *auditEncoder) peer(x *authv3.AttributeContext_Peer, r policy.Redaction) error {
	if len(e.b) > policy.MaxAuditInput {
		return policy.ErrAuditInputTooLarge
	}
	o := e.object()
	if x.Address != nil {
		if m := o.field("address", r); m.write {
			if err := e.message(x.Address.ProtoReflect(), m.r); err != nil {
				return err
			}
		}
	}
	o.str("service", x.Service, r)
	if len(x.Labels) > 0 {
		if m := o.field("labels", r); m.write {
			e.stringMap(x.Labels, m.r)
		}
	}
	o.str("principal", x.Principal, r)
	o.str("certificate", x.Certificate, r)
	e.b = append(e.b, '}')
	return nil
}

// socketAddress writes a TCP socket address with a numeric port or none:
// the protocol, TCP, is the zero value and left out, as protojson does.
func (e *auditEncoder) socketAddress(x *corev3.SocketAddress, r policy.Redaction) {
	o := e.object()
	o.str("address", x.Address, r)
	if p, ok := x.PortSpecifier.(*corev3.SocketAddress_PortValue); ok { // a oneof: present even when 0
		if m := o.field("portValue", r); m.write {
			e.b = strconv.AppendUint(e.b, uint64(p.PortValue), 10)
		}
	}
	o.str("resolverName", x.ResolverName, r)
	if x.Ipv4Compat {
		if m := o.field("ipv4Compat", r); m.write {
			e.b = append(e.b, "true"...)
		}
	}
	o.str("networkNamespaceFilepath", x.NetworkNamespaceFilepath, r)
	e.b = append(e.b, '}')
}
