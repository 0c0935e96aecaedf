package extauthz

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gavel-dev/gavel/policy"
)

// Result classifies an answer for metrics and logs.
type Result string

// Results. WouldDeny is a dry-run decision that denied but was let through.
const (
	Allowed   Result = "allowed"
	Denied    Result = "denied"
	Errored   Result = "error"
	WouldDeny Result = "would_deny"
)

// Reason codes beyond the policy package's error codes.
const (
	ReasonPolicyAllowed = "policy_allowed"
	ReasonPolicyDenied  = "policy_denied"
	ReasonPolicyAsk     = "policy_ask"
	ReasonNoOpinion     = "policy_no_opinion"
	ReasonBadRequest    = "bad_request"
	ReasonOverloaded    = "overloaded"
)

// Answer is a decision (or the error that stood in for one) ready to be
// written back to Envoy or an HTTP proxy.
type Answer struct {
	Decision policy.Decision
	// Err is set when no decision could be made; Code then names why.
	Err    error
	Result Result
	// Code is the reason code: a policy_* code for a decision, or the
	// error's code (timeout, no_bundle, eval_error, bad_request, ...).
	Code string
	// Status is the HTTP status a denial carries (403 for a policy denial
	// unless the policy says otherwise, 503 for errors, 400 for requests
	// that cannot be read).
	Status int
	// Reason is the human-readable why.
	Reason string
}

// Classify turns a decision or an error into an Answer. It is where gavel
// fails closed: every error is a denial with a reason code; only an allow,
// or any decision of a dry-run entry point, lets the request through.
func Classify(d policy.Decision, err error) Answer {
	a := Answer{Decision: d, Err: err}
	switch {
	case err != nil:
		a.Result, a.Status = Errored, http.StatusServiceUnavailable
		a.Code = policy.ReasonCode(err)
		if errors.Is(err, ErrBadRequest) {
			a.Status, a.Code = http.StatusBadRequest, ReasonBadRequest
		}
		if errors.Is(err, errOverloaded) {
			a.Status, a.Code = http.StatusTooManyRequests, ReasonOverloaded
		}
		if a.Code == policy.ReasonUnknownEntry || a.Code == policy.ReasonUndefined || a.Code == policy.ReasonInvalidDecision {
			a.Status = http.StatusInternalServerError
		}
		a.Reason = err.Error()
	case d.Outcome == policy.Allow:
		a.Result, a.Code, a.Status = Allowed, ReasonPolicyAllowed, http.StatusOK
		a.Reason = d.Reason
	default:
		a.Result, a.Status = Denied, http.StatusForbidden
		switch d.Outcome {
		case policy.Ask:
			a.Code = ReasonPolicyAsk
		case policy.NoOpinion:
			a.Code = ReasonNoOpinion
		default:
			a.Code = ReasonPolicyDenied
		}
		if d.HTTPStatus != 0 {
			a.Status = d.HTTPStatus
		}
		a.Reason = d.Reason
		if a.Reason == "" {
			a.Reason = "denied by policy " + d.Entry
		}
	}
	if a.Result != Allowed && d.DryRun {
		a.Result = WouldDeny
	}
	return a
}

// Enforced reports whether the request goes through.
func (a Answer) Enforced() bool { return a.Result == Allowed || a.Result == WouldDeny }

// BuildResponse writes an answer as a CheckResponse. Every response carries
// decision_id, policy_revision, policy_entry, reason and reason_code in its
// dynamic metadata (merged over the policy's own dynamic_metadata), so
// Envoy's access log can name the decision.
func BuildResponse(a Answer) *authv3.CheckResponse {
	return buildResponse(a, structpb.NewStringValue)
}

// buildResponse is BuildResponse with str making the metadata strings that
// repeat across responses (the server shares them through a valueCache).
func buildResponse(a Answer, str func(string) *structpb.Value) *authv3.CheckResponse {
	d := a.Decision
	resp := &authv3.CheckResponse{DynamicMetadata: dynamicMetadata(a, str)}
	if a.Enforced() {
		resp.Status = &rpcstatus.Status{Code: int32(code.Code_OK)}
		ok := &authv3.OkHttpResponse{
			HeadersToRemove:         d.RequestHeadersToRemove,
			QueryParametersToRemove: d.QueryParametersToRemove,
		}
		if a.Result == Allowed {
			ok.Headers = headerOptions(d.Headers)
			ok.ResponseHeadersToAdd = headerOptions(d.ResponseHeadersToAdd)
			for _, q := range d.QueryParametersToSet {
				ok.QueryParametersToSet = append(ok.QueryParametersToSet, &corev3.QueryParameter{Key: q.Name, Value: q.Value})
			}
		} else {
			ok.HeadersToRemove, ok.QueryParametersToRemove = nil, nil
		}
		resp.HttpResponse = &authv3.CheckResponse_OkResponse{OkResponse: ok}
		return resp
	}
	grpcCode := code.Code_PERMISSION_DENIED
	if a.Result == Errored {
		grpcCode = code.Code_UNAVAILABLE
	}
	resp.Status = &rpcstatus.Status{Code: int32(grpcCode), Message: a.Code + ": " + oneLine(a.Reason)}
	denied := &authv3.DeniedHttpResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(a.Status)},
		Headers: headerOptions(d.Headers),
		Body:    d.Body,
	}
	if a.Result == Errored || d.Body == "" {
		denied.Body = errorBody(a)
		denied.Headers = append(denied.Headers, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: "content-type", Value: "application/json"},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	denied.Headers = append(denied.Headers, &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: "x-gavel-decision-id", Value: d.ID},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	})
	resp.HttpResponse = &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied}
	return resp
}

// errorBody is the JSON body of a denial the policy gave no body for.
func errorBody(a Answer) string {
	b, _ := json.Marshal(struct {
		Error      string `json:"error"`
		Code       string `json:"code"`
		DecisionID string `json:"decision_id"`
	}{oneLine(a.Reason), a.Code, a.Decision.ID})
	return string(b)
}

func headerOptions(hs []policy.Header) []*corev3.HeaderValueOption {
	if len(hs) == 0 {
		return nil
	}
	out := make([]*corev3.HeaderValueOption, 0, len(hs))
	seen := make(map[string]bool, len(hs))
	for _, h := range hs {
		// The first value of a name replaces what the request had; further
		// values of the same name are appended (multi-value headers).
		action := corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		if seen[h.Name] {
			action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
		seen[h.Name] = true
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: action,
		})
	}
	return out
}

func dynamicMetadata(a Answer, str func(string) *structpb.Value) *structpb.Struct {
	d := a.Decision
	fields := make(map[string]*structpb.Value, len(d.DynamicMetadata)+7)
	for k, v := range d.DynamicMetadata {
		if pv, err := structpb.NewValue(normalizeJSON(v)); err == nil {
			fields[k] = pv
		}
	}
	fields["decision_id"] = structpb.NewStringValue(d.ID)
	fields["policy_revision"] = str(d.Revision)
	fields["policy_entry"] = str(d.Entry)
	fields["reason"] = structpb.NewStringValue(oneLine(a.Reason))
	fields["reason_code"] = str(a.Code)
	if d.DryRun {
		fields["dry_run"] = structpb.NewBoolValue(true)
		fields["would_deny"] = structpb.NewBoolValue(a.Result == WouldDeny)
	}
	return &structpb.Struct{Fields: fields}
}

// valueCache holds one Value per revision, entry point and reason code:
// few, and the same on most responses. Marshalling only reads a Value, so
// responses share them. It stops growing at maxCached entries.
type valueCache struct {
	m sync.Map // string -> *structpb.Value
	n atomic.Int64
}

const maxCached = 4096

func (c *valueCache) get(s string) *structpb.Value {
	if v, ok := c.m.Load(s); ok {
		return v.(*structpb.Value)
	}
	v := structpb.NewStringValue(s)
	if c.n.Load() < maxCached {
		if prev, loaded := c.m.LoadOrStore(s, v); loaded {
			return prev.(*structpb.Value)
		}
		c.n.Add(1)
	}
	return v
}

// normalizeJSON converts json.Number (as rego results carry) to float64,
// which structpb accepts.
func normalizeJSON(v any) any {
	switch v := v.(type) {
	case json.Number:
		f, _ := v.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = normalizeJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalizeJSON(e)
		}
		return out
	}
	return v
}

func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}
