package extauthz

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strconv"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gavel-dev/gavel/policy"
)

// ErrBadRequest wraps every reason a request cannot be turned into input.
// It is answered with a denial (400), never evaluated.
var ErrBadRequest = errors.New("bad request")

// ErrNoHTTPAttributes is returned for a CheckRequest without
// attributes.request.http: there is no HTTP request to decide on.
var ErrNoHTTPAttributes = fmt.Errorf("%w: check request has no attributes.request.http", ErrBadRequest)

// InputOptions tune [BuildInput].
type InputOptions struct {
	// SkipBodyParse leaves parsed_body and truncated_body out of the input,
	// as opa-envoy-plugin's skip-request-body-parse does.
	SkipBodyParse bool
}

var versionV3 = ast.NewObject(
	[2]*ast.Term{ast.StringTerm("encoding"), ast.StringTerm("protojson")},
	[2]*ast.Term{ast.StringTerm("ext_authz"), ast.StringTerm("v3")},
)

// BuildInput turns a CheckRequest into the OPA-Envoy input document:
//
//   - attributes: the CheckRequest's attributes as protojson renders them
//     (lowerCamel keys, 64-bit integers as strings, bytes as base64);
//   - parsed_path: the path split on "/", URL-decoded, without the query;
//   - parsed_query: each query parameter to the array of its values;
//   - parsed_body: the body of an application/json,
//     application/x-www-form-urlencoded or multipart/form-data request
//     (JSON parts parsed); null when there is no body or its type is not
//     parsed; absent when the body does not parse (the input is still
//     built, so the policy decides: `not input.parsed_body` holds only then);
//   - truncated_body: true when Envoy sent part of the body (the
//     x-envoy-auth-partial-body header, or a content-length larger than the
//     bytes received); parsed_body is then null;
//   - version: {"ext_authz": "v3", "encoding": "protojson"}.
//
// A request without HTTP attributes is refused with ErrNoHTTPAttributes.
func BuildInput(req *authv3.CheckRequest, opts InputOptions) (policy.Input, error) {
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	if httpReq == nil {
		return policy.Input{}, ErrNoHTTPAttributes
	}
	u, err := url.Parse(httpReq.GetPath())
	if err != nil {
		return policy.Input{}, fmt.Errorf("%w: parse path %q: %w", ErrBadRequest, httpReq.GetPath(), err)
	}
	attrs := req.GetAttributes()
	doc := &envoyDocument{attrs: attrs, path: parsedPath(u), rawQuery: u.RawQuery}
	if !opts.SkipBodyParse {
		body, truncated, ok := parseBody(httpReq.GetHeaders(), httpReq.GetBody(), httpReq.GetRawBody())
		if ok {
			doc.body = body
		}
		doc.truncated = ast.BooleanTerm(truncated)
	}
	if needsProtojson(attrs.ProtoReflect()) {
		// Rare (an Any in the metadata): render the attributes now, through
		// protojson, so a rendering error surfaces here and not on a path.
		v, err := attributesViaProtojson(attrs)
		if err != nil {
			return policy.Input{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		doc.rendered = v
	}
	return policy.InputFromDocument(doc), nil
}

// attributesValue renders the attributes as protojson would, directly when
// it can and through protojson when the message holds an Any.
func attributesValue(attrs *authv3.AttributeContext) (ast.Value, error) {
	v, err := protoValue(attrs.ProtoReflect())
	if err == nil {
		return v, nil
	}
	return attributesViaProtojson(attrs)
}

// attributesViaProtojson is the reference route: protojson, then a JSON
// decode with numbers kept exact, as opa-envoy-plugin does.
func attributesViaProtojson(attrs *authv3.AttributeContext) (ast.Value, error) {
	bs, err := protojson.Marshal(attrs)
	if err != nil {
		return nil, fmt.Errorf("encode attributes: %w", err)
	}
	var doc any
	if err := util.UnmarshalJSON(bs, &doc); err != nil {
		return nil, fmt.Errorf("decode attributes: %w", err)
	}
	return ast.InterfaceToValue(doc)
}

// parsedPath is the path split on "/", URL-decoded, without the query.
func parsedPath(u *url.URL) ast.Value {
	segments := strings.Split(strings.TrimLeft(u.Path, "/"), "/")
	terms := make([]*ast.Term, len(segments))
	for i, s := range segments {
		terms[i] = ast.StringTerm(s)
	}
	return ast.NewArray(terms...)
}

// parsedQuery maps each query parameter to the array of its values, as
// url.URL.Query does (malformed pairs are dropped).
func parsedQuery(rawQuery string) ast.Value {
	query := ast.NewObject()
	if rawQuery == "" {
		return query
	}
	values, _ := url.ParseQuery(rawQuery)
	for k, vs := range values {
		vals := make([]*ast.Term, len(vs))
		for i, v := range vs {
			vals[i] = ast.StringTerm(v)
		}
		query.Insert(ast.StringTerm(k), ast.ArrayTerm(vals...))
	}
	return query
}

// parseBody returns parsed_body and truncated_body. ok is false when the
// body could not be parsed: parsed_body is then left out of the input.
func parseBody(headers map[string]string, body string, raw []byte) (v ast.Value, truncated, ok bool) {
	ct, hasCT := headers["content-type"]
	if !hasCT {
		return ast.Null{}, false, true
	}
	var kind string
	switch {
	case strings.Contains(ct, "application/json"):
		kind = "json"
	case strings.Contains(ct, "application/x-www-form-urlencoded"):
		kind = "form"
	case strings.Contains(ct, "multipart/form-data"):
		kind = "multipart"
	default:
		return ast.Null{}, false, true
	}
	payload := body
	if payload == "" {
		payload = string(raw)
	}
	if payload == "" {
		return ast.Null{}, false, true
	}
	if headers["x-envoy-auth-partial-body"] == "true" {
		return ast.Null{}, true, true
	}
	if cl, has := headers["content-length"]; has {
		n, err := strconv.ParseInt(strings.TrimSpace(cl), 10, 64)
		if err != nil {
			return nil, false, false
		}
		if n != -1 && n > int64(len(payload)) {
			return ast.Null{}, true, true
		}
	}
	if kind == "json" {
		v, err := parseJSON([]byte(payload))
		if err != nil {
			return nil, false, false
		}
		return v, false, true
	}
	var doc any
	var err error
	switch kind {
	case "form":
		var q url.Values
		if q, err = url.ParseQuery(payload); err == nil {
			doc = map[string][]string(q)
		}
	case "multipart":
		doc, err = parseMultipart(ct, payload)
	}
	if err != nil {
		return nil, false, false
	}
	if doc == nil {
		return ast.Null{}, false, true
	}
	if v, err = ast.InterfaceToValue(doc); err != nil {
		return nil, false, false
	}
	return v, false, true
}

func parseMultipart(contentType, payload string) (any, error) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, err
	}
	boundary, ok := params["boundary"]
	if !ok {
		return nil, nil
	}
	values := map[string][]any{}
	mr := multipart.NewReader(strings.NewReader(payload), boundary)
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		name := p.FormName()
		if name == "" {
			continue
		}
		value, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		if strings.Contains(p.Header.Get("Content-Type"), "application/json") {
			var jv any
			if err := util.UnmarshalJSON(value, &jv); err != nil {
				return nil, err
			}
			values[name] = append(values[name], jv)
			continue
		}
		values[name] = append(values[name], string(value))
	}
	return values, nil
}
