package extauthz

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// attrGen generates AttributeContexts that reach every field, with the
// values where a JSON rendering goes wrong: unicode and control characters,
// empty versus set fields, extreme integers and floats, timestamps at and
// past their bounds, deep Struct metadata.
type attrGen struct {
	r *rand.Rand
	// invalid lets the generator put in values protojson refuses (a NaN in
	// a Struct, a timestamp out of range, a Value with no kind).
	invalid bool
	// anys lets it put an Any in typed_filter_metadata.
	anys bool
}

func newAttrGen(seed uint64) *attrGen {
	return &attrGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), invalid: true, anys: true}
}

func (g *attrGen) chance(p float64) bool { return g.r.Float64() < p }

var genRunes = []rune{
	'a', 'b', 'z', 'A', 'Z', '0', '9', ' ', '-', '_', '.', '/', '%', '+', '=', '?', '&', ':', '"', '\\',
	'<', '>', '\'', '\x00', '\x01', '\b', '\t', '\n', '\r', '\x1b', '\x1f', '\x7f', '\u0080', '\u009f',
	'é', 'ß', 'ж', '漢', '語', '\u00a0', '\u200b', '\u2028', '\u2029', '\ufeff', '\ufffd', '\uffff',
	'😀', '\U0001f1fa', '\U0010ffff',
}

// str is a valid UTF-8 string (protobuf requires it of string fields).
func (g *attrGen) str() string {
	switch g.r.IntN(6) {
	case 0:
		return ""
	case 1:
		return []string{"GET", "POST", "x-api-key", "application/json", "/", "true", "null", "0", "-1", "1e3"}[g.r.IntN(10)]
	}
	n := g.r.IntN(12)
	var b strings.Builder
	for range n {
		if g.chance(0.5) {
			b.WriteByte(byte('a' + g.r.IntN(26)))
			continue
		}
		b.WriteRune(genRunes[g.r.IntN(len(genRunes))])
	}
	return b.String()
}

func (g *attrGen) bytes() []byte {
	if g.chance(0.2) {
		return nil
	}
	b := make([]byte, g.r.IntN(40))
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	return b
}

func (g *attrGen) int64() int64 {
	switch g.r.IntN(10) {
	case 0:
		return 0
	case 1:
		return math.MaxInt64
	case 2:
		return math.MinInt64
	case 3:
		return 1<<53 + 1
	case 4:
		return -g.r.Int64N(1 << 20)
	case 5:
		return -1
	default:
		return g.r.Int64N(1 << uint(g.r.IntN(62)+1))
	}
}

func (g *attrGen) strMap() map[string]string {
	if g.chance(0.3) {
		return nil
	}
	m := map[string]string{}
	for range g.r.IntN(6) {
		m[g.str()] = g.str()
	}
	return m
}

func (g *attrGen) float() float64 {
	switch g.r.IntN(16) {
	case 0:
		return 0
	case 1:
		return math.Copysign(0, -1)
	case 2:
		return 1e21
	case 3:
		return 1e20
	case 4:
		return 1e-7
	case 5:
		return 1e-6
	case 6:
		return 9.999999e-7
	case 7:
		return math.MaxFloat64
	case 8:
		return math.SmallestNonzeroFloat64
	case 9:
		return float64(1<<53 + 1)
	case 10:
		return float64(g.r.Int64N(1<<40) - 1<<39)
	case 11:
		return g.r.Float64() * math.Pow(10, float64(g.r.IntN(60)-30))
	case 12:
		return -g.r.Float64()
	default:
		f := math.Float64frombits(g.r.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0.5
		}
		return f
	}
}

func (g *attrGen) value(depth int) *structpb.Value {
	n := 6
	if depth > 2 {
		n = 4 // scalars only
	}
	if g.invalid && g.chance(0.002) {
		switch g.r.IntN(4) {
		case 0:
			return structpb.NewNumberValue(math.NaN())
		case 1:
			return structpb.NewNumberValue(math.Inf(1 - 2*g.r.IntN(2)))
		case 2:
			return &structpb.Value{} // no kind
		default:
			return nil
		}
	}
	switch g.r.IntN(n) {
	case 0:
		return structpb.NewNullValue()
	case 1:
		return structpb.NewBoolValue(g.chance(0.5))
	case 2:
		return structpb.NewNumberValue(g.float())
	case 3:
		return structpb.NewStringValue(g.str())
	case 4:
		return structpb.NewStructValue(g.structv(depth + 1))
	default:
		l := &structpb.ListValue{}
		for range g.r.IntN(3) {
			l.Values = append(l.Values, g.value(depth+1))
		}
		return structpb.NewListValue(l)
	}
}

func (g *attrGen) structv(depth int) *structpb.Struct {
	s := &structpb.Struct{}
	if g.chance(0.1) {
		return s
	}
	s.Fields = map[string]*structpb.Value{}
	for range g.r.IntN(4) {
		s.Fields[g.str()] = g.value(depth)
	}
	return s
}

func (g *attrGen) timestamp() *timestamppb.Timestamp {
	if g.chance(0.3) {
		return nil
	}
	ts := &timestamppb.Timestamp{}
	switch g.r.IntN(6) {
	case 0:
	case 1:
		ts.Seconds = -62135596800
	case 2:
		ts.Seconds = 253402300799
	case 3:
		ts.Seconds = -g.r.Int64N(62135596800)
	default:
		ts.Seconds = g.r.Int64N(253402300799)
	}
	switch g.r.IntN(7) {
	case 0:
	case 1:
		ts.Nanos = 999999999
	case 2:
		ts.Nanos = int32(g.r.IntN(1000)) * 1e6
	case 3:
		ts.Nanos = int32(g.r.IntN(1e6)) * 1e3
	case 4:
		ts.Nanos = 100000000
	default:
		ts.Nanos = int32(g.r.IntN(1e9))
	}
	if g.invalid && g.chance(0.02) {
		switch g.r.IntN(4) {
		case 0:
			ts.Seconds = 253402300800
		case 1:
			ts.Seconds = -62135596801
		case 2:
			ts.Nanos = -1
		default:
			ts.Nanos = 1e9
		}
	}
	return ts
}

func (g *attrGen) address() *corev3.Address {
	switch g.r.IntN(6) {
	case 0:
		return nil
	case 1:
		return &corev3.Address{}
	case 2:
		return &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: g.str(), Mode: g.r.Uint32N(0o777 + 1)}}}
	case 3:
		return &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
			AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: g.str()},
			EndpointId:           g.str(),
		}}}
	}
	sa := &corev3.SocketAddress{
		Address:      g.str(),
		ResolverName: g.str(),
		Ipv4Compat:   g.chance(0.3),
		Protocol:     corev3.SocketAddress_Protocol([]int32{0, 1, 7}[g.r.IntN(3)]), // 7: unknown enum number
	}
	switch g.r.IntN(3) {
	case 0:
		sa.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: []uint32{0, 1, 65535, math.MaxUint32}[g.r.IntN(4)]}
	case 1:
		sa.PortSpecifier = &corev3.SocketAddress_NamedPort{NamedPort: g.str()}
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: sa}}
}

func (g *attrGen) peer() *authv3.AttributeContext_Peer {
	if g.chance(0.3) {
		return nil
	}
	p := &authv3.AttributeContext_Peer{Address: g.address()}
	if g.chance(0.5) {
		p.Service, p.Principal = g.str(), "spiffe://cluster.local/ns/"+g.str()
		p.Labels = g.strMap()
	}
	if g.chance(0.3) {
		p.Certificate = "-----BEGIN%20CERTIFICATE-----%0A" + g.str() + "%0A-----END%20CERTIFICATE-----%0A"
	}
	return p
}

var (
	genMethods      = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "", "get", "M\u00e9thode"}
	genContentTypes = []string{"application/json", "application/json; charset=utf-8", "application/x-www-form-urlencoded",
		"multipart/form-data; boundary=b", "text/plain", "", "application/jsonx"}
)

func (g *attrGen) path() string {
	var b strings.Builder
	for range g.r.IntN(5) {
		b.WriteByte('/')
		switch g.r.IntN(4) {
		case 0:
			b.WriteString(strings.Map(func(r rune) rune {
				if r < 0x20 || r == 0x7f || r == '?' || r == '#' || r == '%' {
					return -1 // url.Parse refuses them: the %zz case covers that
				}
				return r
			}, g.str()))
		case 1:
			b.WriteString("%2F%C3%A9%20")
		default:
			b.WriteString([]string{"api", "v1", "orders", "healthz", "a+b", ""}[g.r.IntN(6)])
		}
	}
	if b.Len() == 0 || g.chance(0.1) {
		b.WriteByte('/')
	}
	if g.chance(0.4) {
		b.WriteString("?a=1&a=2&b=%E2%9C%93&c")
	}
	if g.chance(0.02) {
		b.WriteString("%zz") // unparsable
	}
	return b.String()
}

func (g *attrGen) body() string {
	switch g.r.IntN(5) {
	case 0:
		return ""
	case 1:
		return `{"k":[1,2.5,"x",{"n":null}],"card":"4111 1111 1111 1111"}`
	case 2:
		return "a=1&a=2&b=x+y"
	case 3:
		return "--b\r\nContent-Disposition: form-data; name=\"j\"\r\nContent-Type: application/json\r\n\r\n{\"x\":1}\r\n--b--\r\n"
	}
	return g.str()
}

func (g *attrGen) httpRequest() *authv3.AttributeContext_HttpRequest {
	h := &authv3.AttributeContext_HttpRequest{
		Id:       g.str(),
		Method:   genMethods[g.r.IntN(len(genMethods))],
		Path:     g.path(),
		Host:     g.str(),
		Scheme:   []string{"http", "https", ""}[g.r.IntN(3)],
		Query:    g.str(),
		Fragment: g.str(),
		Size:     g.int64(),
		Protocol: []string{"HTTP/1.1", "HTTP/2", ""}[g.r.IntN(3)],
		Body:     g.body(),
		Headers:  g.strMap(),
	}
	if g.chance(0.5) {
		if h.Headers == nil {
			h.Headers = map[string]string{}
		}
		h.Headers["content-type"] = genContentTypes[g.r.IntN(len(genContentTypes))]
		if g.chance(0.3) {
			h.Headers["content-length"] = strconv.Itoa(g.r.IntN(200) - 1)
		}
		if g.chance(0.1) {
			h.Headers["x-envoy-auth-partial-body"] = "true"
		}
	}
	if g.chance(0.3) {
		h.RawBody = g.bytes()
	}
	if g.chance(0.3) {
		hm := &corev3.HeaderMap{}
		for range g.r.IntN(4) {
			hv := &corev3.HeaderValue{Key: g.str()}
			if g.chance(0.5) {
				hv.RawValue = g.bytes()
			} else {
				hv.Value = g.str()
			}
			hm.Headers = append(hm.Headers, hv)
		}
		h.HeaderMap = hm
	}
	return h
}

func (g *attrGen) metadata() *corev3.Metadata {
	if g.chance(0.4) {
		return nil
	}
	md := &corev3.Metadata{}
	if g.chance(0.8) {
		md.FilterMetadata = map[string]*structpb.Struct{}
		for range g.r.IntN(3) + 1 {
			var s *structpb.Struct
			if !g.invalid || !g.chance(0.01) {
				s = g.structv(0)
			}
			md.FilterMetadata[g.str()] = s
		}
	}
	if g.anys && g.chance(0.05) {
		md.TypedFilterMetadata = map[string]*anypb.Any{g.str(): g.any()}
	}
	return md
}

func (g *attrGen) any() *anypb.Any {
	var m proto.Message
	switch g.r.IntN(4) {
	case 0:
		m = g.address()
		if m.(*corev3.Address) == nil {
			m = &corev3.Address{}
		}
	case 1:
		m = g.structv(0)
	case 2:
		m = timestamppb.New(timestamppb.Now().AsTime())
	default:
		m = g.value(0)
		if m.(*structpb.Value) == nil {
			m = structpb.NewNullValue()
		}
	}
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

// attributes is one generated AttributeContext. Most have an HTTP request.
func (g *attrGen) attributes() *authv3.AttributeContext {
	a := &authv3.AttributeContext{
		Source:               g.peer(),
		Destination:          g.peer(),
		ContextExtensions:    g.strMap(),
		MetadataContext:      g.metadata(),
		RouteMetadataContext: g.metadata(),
	}
	if g.chance(0.95) {
		a.Request = &authv3.AttributeContext_Request{Time: g.timestamp()}
		if g.chance(0.97) {
			a.Request.Http = g.httpRequest()
		}
	}
	switch g.r.IntN(3) {
	case 0:
		a.TlsSession = &authv3.AttributeContext_TLSSession{}
	case 1:
		a.TlsSession = &authv3.AttributeContext_TLSSession{Sni: g.str()}
	}
	return a
}

// hasAny reports whether the attributes hold an Any.
func hasAny(a *authv3.AttributeContext) bool {
	return len(a.GetMetadataContext().GetTypedFilterMetadata()) > 0 ||
		len(a.GetRouteMetadataContext().GetTypedFilterMetadata()) > 0
}
