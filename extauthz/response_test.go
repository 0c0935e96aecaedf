package extauthz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gavel-dev/gavel/policy"
)

// responseFixture is testdata/response/NAME.decision.json: what the engine
// answered, as a raw policy result (parsed as the engine parses it) or as a
// policy.Decision, or the class of the error that stood in for a decision.
type responseFixture struct {
	// Result is a policy result: a boolean or an OPA-Envoy object.
	Result json.RawMessage `json:"result"`
	// Decision is a policy.Decision in its JSON form.
	Decision *policy.Decision `json:"decision"`
	// Error is an error class: a key of fixtureErrors.
	Error string `json:"error"`
	// DryRun marks the entry point dry-run.
	DryRun bool `json:"dry_run"`
	// Revision overrides goldenRevision ("" for no bundle).
	Revision *string `json:"revision"`
}

const (
	goldenDecisionID = "00000000-0000-4000-8000-000000000001"
	goldenRevision   = "5d41402abc4b2a76b9719d911017c592"
)

// fixtureErrors are errors of each class, shaped as the policy service and
// the server produce them.
var fixtureErrors = map[string]error{
	policy.ReasonNoBundle:        policy.ErrNoActiveBundle,
	policy.ReasonTimeout:         fmt.Errorf("evaluate envoy/authz/allow: %w", context.DeadlineExceeded),
	policy.ReasonCanceled:        context.Canceled,
	policy.ReasonEvalError:       errors.New("evaluate envoy/authz/allow: 1 error occurred: policy.rego:7: eval_builtin_error: regex.match: error parsing regexp"),
	policy.ReasonUndefined:       fmt.Errorf("%w at envoy/authz/allow", policy.ErrUndefined),
	policy.ReasonUnknownEntry:    fmt.Errorf("%w: no rules at envoy/authz/allow in bundle 5d41402abc4b", policy.ErrUnknownEntry),
	policy.ReasonInvalidDecision: fmt.Errorf("evaluate envoy/authz/allow: %w: result is a string, want a boolean or an object with \"allowed\" or \"decision\"", policy.ErrInvalidDecision),
	policy.ReasonBadInput:        fmt.Errorf("%w: read input.parsed_body", policy.ErrBadInput),
	ReasonBadRequest:             ErrNoHTTPAttributes,
	ReasonOverloaded:             errOverloaded,
}

// fixtureAnswer is the Answer a fixture describes.
func fixtureAnswer(t *testing.T, f responseFixture) Answer {
	t.Helper()
	var d policy.Decision
	switch {
	case f.Result != nil:
		dec := json.NewDecoder(bytes.NewReader(f.Result))
		dec.UseNumber() // as rego results carry numbers
		var result any
		if err := dec.Decode(&result); err != nil {
			t.Fatal(err)
		}
		var err error
		if d, err = policy.ParseDecision(result); err != nil {
			t.Fatalf("ParseDecision: %v", err)
		}
	case f.Decision != nil:
		d = *f.Decision
	}
	var err error
	if f.Error != "" {
		if err = fixtureErrors[f.Error]; err == nil {
			t.Fatalf("unknown error class %q", f.Error)
		}
	}
	d.Entry, d.ID, d.Revision, d.DryRun = DefaultEntry, goldenDecisionID, goldenRevision, d.DryRun || f.DryRun
	if f.Revision != nil {
		d.Revision = *f.Revision
	}
	return Classify(d, err)
}

// TestResponseGolden turns each testdata/response/NAME.decision.json into a
// CheckResponse and compares its protojson with NAME.response.json.
func TestResponseGolden(t *testing.T) {
	dir := filepath.Join("testdata", "response")
	for _, name := range cases(t, dir, ".decision.json") {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, name+".decision.json"))
			if err != nil {
				t.Fatal(err)
			}
			var f responseFixture
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&f); err != nil {
				t.Fatalf("fixture: %v", err)
			}
			a := fixtureAnswer(t, f)
			resp := BuildResponse(a)
			if err := resp.ValidateAll(); err != nil {
				t.Errorf("response fails Envoy's validation: %v", err)
			}
			checkResponseInvariants(t, a, f, resp)
			bs, err := protojson.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(dir, name+".response.json"), prettyJSON(t, bs))
		})
	}
}

func checkResponseInvariants(t *testing.T, a Answer, f responseFixture, resp *authv3.CheckResponse) {
	t.Helper()
	md := resp.GetDynamicMetadata().GetFields()
	for _, k := range []string{"decision_id", "policy_revision", "policy_entry", "reason", "reason_code"} {
		if _, ok := md[k]; !ok {
			t.Errorf("dynamic_metadata has no %s", k)
		}
	}
	if got := md["decision_id"].GetStringValue(); got != goldenDecisionID {
		t.Errorf("decision_id = %q, want %q", got, goldenDecisionID)
	}
	if md["reason_code"].GetStringValue() == "" {
		t.Error("empty reason_code")
	}
	if strings.ContainsAny(md["reason"].GetStringValue(), "\r\n") {
		t.Errorf("reason %q spans lines", md["reason"].GetStringValue())
	}
	if f.Error != "" && md["reason_code"].GetStringValue() != f.Error {
		t.Errorf("reason_code = %q, want the error class %q", md["reason_code"].GetStringValue(), f.Error)
	}
	ok := resp.GetStatus().GetCode() == int32(code.Code_OK)
	if ok != (resp.GetOkResponse() != nil) || ok == (resp.GetDeniedResponse() != nil) {
		t.Errorf("status %v with http_response %T", resp.GetStatus(), resp.GetHttpResponse())
	}
	wantOK := a.Decision.Outcome == policy.Allow && f.Error == "" || a.Decision.DryRun
	if ok != wantOK {
		t.Errorf("status OK = %v, want %v (fail closed unless allowed or dry-run)", ok, wantOK)
	}
	if f.DryRun {
		if md["dry_run"].GetBoolValue() != true {
			t.Error("dry-run response without dry_run metadata")
		}
		if got, want := md["would_deny"].GetBoolValue(), a.Decision.Outcome != policy.Allow || f.Error != ""; got != want {
			t.Errorf("would_deny = %v, want %v", got, want)
		}
	}
	if denied := resp.GetDeniedResponse(); denied != nil {
		if denied.GetBody() == "" {
			t.Error("denial without a body")
		}
		found := false
		for _, h := range denied.GetHeaders() {
			if h.GetHeader().GetKey() == "x-gavel-decision-id" && h.GetHeader().GetValue() == goldenDecisionID {
				found = true
			}
		}
		if !found {
			t.Error("denial without x-gavel-decision-id")
		}
		if int(denied.GetStatus().GetCode()) != a.Status {
			t.Errorf("denied status %d, answer status %d", denied.GetStatus().GetCode(), a.Status)
		}
	}
}

func TestClassifyStatus(t *testing.T) {
	for _, tc := range []struct {
		class      string
		status     int
		grpcCode   code.Code
		wantResult Result
	}{
		{policy.ReasonNoBundle, http.StatusServiceUnavailable, code.Code_UNAVAILABLE, Errored},
		{policy.ReasonTimeout, http.StatusServiceUnavailable, code.Code_UNAVAILABLE, Errored},
		{policy.ReasonCanceled, http.StatusServiceUnavailable, code.Code_UNAVAILABLE, Errored},
		{policy.ReasonEvalError, http.StatusServiceUnavailable, code.Code_UNAVAILABLE, Errored},
		{policy.ReasonBadInput, http.StatusServiceUnavailable, code.Code_UNAVAILABLE, Errored},
		{policy.ReasonUndefined, http.StatusInternalServerError, code.Code_UNAVAILABLE, Errored},
		{policy.ReasonUnknownEntry, http.StatusInternalServerError, code.Code_UNAVAILABLE, Errored},
		{policy.ReasonInvalidDecision, http.StatusInternalServerError, code.Code_UNAVAILABLE, Errored},
		{ReasonBadRequest, http.StatusBadRequest, code.Code_UNAVAILABLE, Errored},
		{ReasonOverloaded, http.StatusTooManyRequests, code.Code_UNAVAILABLE, Errored},
	} {
		t.Run(tc.class, func(t *testing.T) {
			a := Classify(policy.Decision{ID: "x"}, fixtureErrors[tc.class])
			if a.Code != tc.class || a.Status != tc.status || a.Result != tc.wantResult || a.Enforced() {
				t.Errorf("Classify = code %q status %d result %q enforced %v; want %q %d %q false",
					a.Code, a.Status, a.Result, a.Enforced(), tc.class, tc.status, tc.wantResult)
			}
			if got := BuildResponse(a).GetStatus().GetCode(); got != int32(tc.grpcCode) {
				t.Errorf("gRPC status %v, want %v", code.Code(got), tc.grpcCode)
			}
		})
	}
}
