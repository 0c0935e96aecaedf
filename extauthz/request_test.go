package extauthz

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gavel-dev/gavel/policy"
)

// TestInputGolden turns each testdata/input/NAME.request.json (a
// CheckRequest in protojson) into the input document and compares it with
// NAME.input.json. Cases named skip-body-parse* build with SkipBodyParse.
func TestInputGolden(t *testing.T) {
	dir := filepath.Join("testdata", "input")
	for _, name := range cases(t, dir, ".request.json") {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, name+".request.json"))
			if err != nil {
				t.Fatal(err)
			}
			req := &authv3.CheckRequest{}
			if err := protojson.Unmarshal(raw, req); err != nil {
				t.Fatalf("request: %v", err)
			}
			opts := InputOptions{SkipBodyParse: strings.HasPrefix(name, "skip-body-parse")}
			in, err := BuildInput(req, opts)
			if err != nil {
				t.Fatalf("BuildInput: %v", err)
			}
			v, err := in.Value()
			if err != nil {
				t.Fatalf("Value: %v", err)
			}
			golden(t, filepath.Join(dir, name+".input.json"), valueJSON(t, v))

			// The attributes are protojson's, whichever route built them.
			ref, err := attributesViaProtojson(req.Attributes)
			if err != nil {
				t.Fatal(err)
			}
			if got, _, _ := in.Find(ast.Ref{attributesKey}); got == nil || !sameText(got, ref) {
				t.Errorf("attributes differ from protojson:\n got  %v\n want %v", got, ref)
			}
			checkFindAgrees(t, in, v, nil)
		})
	}
}

func TestInputBodyFields(t *testing.T) {
	// The parts of the golden files a reader should not have to diff by eye.
	for _, tc := range []struct {
		name          string
		wantBody      string // JSON of parsed_body, "ABSENT" when left out
		wantTruncated bool
	}{
		{"invalid-json-body", "ABSENT", false},
		{"no-content-type", "null", false},
		{"unsupported-content-type", "null", false},
		{"truncated-content-length", "null", true},
		{"truncated-partial-header", "null", true},
		{"raw-body-only", `{"item":"pen","qty":[1,2,3]}`, false},
		{"form-body", `{"a":["1","2"],"b":["hello world"],"c":["✓"],"d":[""]}`, false},
		{"multipart-body", `{"meta":[{"kind":"report","pages":3}],"note":["plain text","second"]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "input", tc.name+".request.json"))
			if err != nil {
				t.Fatal(err)
			}
			req := &authv3.CheckRequest{}
			if err := protojson.Unmarshal(raw, req); err != nil {
				t.Fatal(err)
			}
			in, err := BuildInput(req, InputOptions{})
			if err != nil {
				t.Fatal(err)
			}
			body, found, err := in.Find(ast.MustParseRef("input.parsed_body")[1:])
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.wantBody == "ABSENT" && found:
				t.Errorf("parsed_body = %v, want it absent", body)
			case tc.wantBody != "ABSENT" && !found:
				t.Errorf("parsed_body absent, want %s", tc.wantBody)
			case found && ast.Compare(body, ast.MustParseTerm(tc.wantBody).Value) != 0:
				t.Errorf("parsed_body = %v, want %s", body, tc.wantBody)
			}
			tr, _, _ := in.Find(ast.MustParseRef("input.truncated_body")[1:])
			if ast.Compare(tr, ast.Boolean(tc.wantTruncated)) != 0 {
				t.Errorf("truncated_body = %v, want %v", tr, tc.wantTruncated)
			}
		})
	}
}

func TestBuildInputBadRequests(t *testing.T) {
	for _, tc := range []struct {
		name   string
		req    *authv3.CheckRequest
		noHTTP bool
	}{
		{"nil request", nil, true},
		{"no attributes", &authv3.CheckRequest{}, true},
		{"attributes without request", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Principal: "spiffe://a"},
		}}, true},
		{"request without http", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Time: timestamppb.Now()},
		}}, true},
		{"bad escape in path", httpRequest("GET", "/orders/%zz", nil, ""), false},
		{"control character in path", httpRequest("GET", "/orders/\x01", nil, ""), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := BuildInput(tc.req, InputOptions{})
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("err = %v, want ErrBadRequest", err)
			}
			if got := errors.Is(err, ErrNoHTTPAttributes); got != tc.noHTTP {
				t.Errorf("errors.Is(err, ErrNoHTTPAttributes) = %v, want %v (err %v)", got, tc.noHTTP, err)
			}
			if !in.IsZero() {
				t.Error("input built for a bad request")
			}
			if a := Classify(policy.Decision{}, err); a.Status != 400 || a.Code != ReasonBadRequest || a.Enforced() {
				t.Errorf("Classify = %+v, want a 400 bad_request denial", a)
			}
		})
	}
}

// An unreadable content-length is not a bad request: the body cannot be
// trusted, so parsed_body is left out and the policy decides.
func TestBuildInputUnreadableContentLength(t *testing.T) {
	req := httpRequest("POST", "/orders", map[string]string{"content-type": "application/json", "content-length": "many"}, `{}`)
	in, err := BuildInput(req, InputOptions{})
	if err != nil {
		t.Fatalf("BuildInput: %v", err)
	}
	if v, found, _ := in.Find(ast.Ref{ast.StringTerm("parsed_body")}); found {
		t.Errorf("parsed_body = %v, want it absent", v)
	}
}

// TestBuildInputAny: an Any in typed_filter_metadata sends the attributes
// through protojson, which resolves the packed type from the registry.
func TestBuildInputAny(t *testing.T) {
	packed, err := anypb.New(socketAddress("10.1.2.3", 8443))
	if err != nil {
		t.Fatal(err)
	}
	unknown := &anypb.Any{TypeUrl: "type.googleapis.com/example.Unregistered", Value: []byte{8, 1}}
	for _, tc := range []struct {
		name    string
		any     *anypb.Any
		wantErr bool
	}{
		{"registered type", packed, false},
		{"unregistered type", unknown, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httpRequest("GET", "/", nil, "")
			req.Attributes.MetadataContext = &corev3.Metadata{
				FilterMetadata:      map[string]*structpb.Struct{"a": {Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(1)}}},
				TypedFilterMetadata: map[string]*anypb.Any{"envoy.original_dst": tc.any},
			}
			if !needsProtojson(req.Attributes.ProtoReflect()) {
				t.Fatal("needsProtojson = false with an Any present")
			}
			if _, err := protoValue(req.Attributes.ProtoReflect()); !errors.Is(err, errNeedsProtojson) {
				t.Fatalf("protoValue err = %v, want errNeedsProtojson", err)
			}
			in, err := BuildInput(req, InputOptions{})
			if tc.wantErr {
				if !errors.Is(err, ErrBadRequest) {
					t.Fatalf("err = %v, want ErrBadRequest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, found, err := in.Find(ast.MustParseRef(`input.attributes.metadataContext.typedFilterMetadata["envoy.original_dst"].socketAddress.portValue`)[1:])
			if err != nil || !found || ast.Compare(got, ast.Number("8443")) != 0 {
				t.Errorf("Find = %v, %v, %v; want 8443", got, found, err)
			}
			typ, _, _ := in.Find(ast.MustParseRef(`input.attributes.metadataContext.typedFilterMetadata["envoy.original_dst"]["@type"]`)[1:])
			if ast.Compare(typ, ast.String("type.googleapis.com/envoy.config.core.v3.Address")) != 0 {
				t.Errorf("@type = %v", typ)
			}
			v, err := in.Value()
			if err != nil {
				t.Fatal(err)
			}
			checkFindAgrees(t, in, v, nil)
		})
	}
}

// httpRequest is a minimal CheckRequest for an HTTP request.
func httpRequest(method, path string, headers map[string]string, body string) *authv3.CheckRequest {
	h := map[string]string{":method": method, ":path": path}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Headers: h, Body: body, Host: "svc",
		}},
	}}
}
