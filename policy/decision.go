package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Outcome is what a decision says should happen.
type Outcome uint8

// Outcomes. NoOpinion is for agent hooks: the policy has nothing to say and
// the agent's own permission flow goes on.
const (
	NoOpinion Outcome = iota
	Allow
	Deny
	Ask
)

func (o Outcome) String() string {
	switch o {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	case Ask:
		return "ask"
	default:
		return "no_opinion"
	}
}

// MarshalText encodes the outcome as its name.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText decodes an outcome name.
func (o *Outcome) UnmarshalText(b []byte) error {
	v, ok := parseOutcome(string(b))
	if !ok {
		return fmt.Errorf("unknown outcome %q (want allow, deny, ask or no_opinion)", b)
	}
	*o = v
	return nil
}

func parseOutcome(s string) (Outcome, bool) {
	switch s {
	case "allow":
		return Allow, true
	case "deny":
		return Deny, true
	case "ask":
		return Ask, true
	case "no_opinion", "":
		return NoOpinion, true
	}
	return NoOpinion, false
}

// Header is one HTTP header (or query parameter) to set.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Decision is what a policy answered, normalised.
//
// A boolean result, or an OPA-Envoy object with "allowed", maps onto it
// unchanged; gavel's own object form uses "decision": "allow" | "deny" |
// "ask" | "no_opinion". Decisions may be shared between goroutines through
// the cache: treat every field as read-only.
type Decision struct {
	Outcome Outcome `json:"outcome"`
	// Reason is shown to the user (and to Envoy's client as the body when
	// the policy gave none).
	Reason string `json:"reason,omitempty"`
	// AgentReason is shown to a coding agent, when it differs from Reason.
	AgentReason string `json:"agent_reason,omitempty"`
	// RuleIDs name the rules that produced the decision.
	RuleIDs []string `json:"rule_ids,omitempty"`

	// OPA-Envoy response fields.
	HTTPStatus              int            `json:"http_status,omitempty"`
	Body                    string         `json:"body,omitempty"`
	Headers                 []Header       `json:"headers,omitempty"`
	ResponseHeadersToAdd    []Header       `json:"response_headers_to_add,omitempty"`
	RequestHeadersToRemove  []string       `json:"request_headers_to_remove,omitempty"`
	QueryParametersToSet    []Header       `json:"query_parameters_to_set,omitempty"`
	QueryParametersToRemove []string       `json:"query_parameters_to_remove,omitempty"`
	DynamicMetadata         map[string]any `json:"dynamic_metadata,omitempty"`

	// UpdatedInput replaces an agent tool's input before it runs.
	UpdatedInput map[string]any `json:"updated_input,omitempty"`
	// Fields holds the policy's whole object result, for mappers that read
	// fields beyond the ones above (nil for a boolean result).
	Fields map[string]any `json:"fields,omitempty"`
	// TTL, when set by the policy, shortens how long the decision is cached.
	TTL time.Duration `json:"ttl,omitempty"`

	// Filled in per evaluation by the Service.
	Entry    string `json:"entry"`
	Revision string `json:"revision"`
	ID       string `json:"id,omitempty"`
	DryRun   bool   `json:"dry_run,omitempty"`
	Cached   bool   `json:"cached,omitempty"`
	// Redaction is the entry point's sensitive input paths, for the audit
	// record of this decision (see RedactedInput).
	Redaction Redaction `json:"-"`
}

// Allowed reports whether the decision lets the action proceed.
func (d Decision) Allowed() bool { return d.Outcome == Allow }

// ErrInvalidDecision is returned when a policy result has a shape gavel
// cannot interpret. It names the offending field.
var ErrInvalidDecision = errors.New("invalid decision")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidDecision, fmt.Sprintf(format, args...))
}

// ParseDecision interprets a policy result (as returned by rego, with
// json.Number for numbers): a boolean, an OPA-Envoy object with "allowed",
// or a gavel object with "decision".
func ParseDecision(result any) (Decision, error) {
	switch r := result.(type) {
	case bool:
		if r {
			return Decision{Outcome: Allow}, nil
		}
		return Decision{Outcome: Deny}, nil
	case map[string]any:
		return parseObject(r)
	default:
		return Decision{}, invalid("result is %s, want a boolean or an object with \"allowed\" or \"decision\"", jsonType(result))
	}
}

func parseObject(r map[string]any) (d Decision, err error) {
	d.Fields = r
	allowed, hasAllowed := r["allowed"]
	decision, hasDecision := r["decision"]
	switch {
	case hasAllowed:
		b, ok := allowed.(bool)
		if !ok {
			return d, invalid("\"allowed\" is %s, want a boolean", jsonType(allowed))
		}
		d.Outcome = Deny
		if b {
			d.Outcome = Allow
		}
	case hasDecision:
		s, ok := decision.(string)
		if !ok {
			return d, invalid("\"decision\" is %s, want a string", jsonType(decision))
		}
		if d.Outcome, ok = parseOutcome(s); !ok {
			return d, invalid("\"decision\" is %q, want allow, deny, ask or no_opinion", s)
		}
	default:
		return d, invalid("object result has neither \"allowed\" nor \"decision\"")
	}

	if d.Reason, err = optString(r, "reason"); err != nil {
		return d, err
	}
	if d.Reason == "" {
		reasons, err := optStrings(r, "reasons")
		if err != nil {
			return d, err
		}
		d.Reason = strings.Join(reasons, "; ")
	}
	if d.AgentReason, err = optString(r, "agent_reason"); err != nil {
		return d, err
	}
	if d.RuleIDs, err = optStrings(r, "rule_ids"); err != nil {
		return d, err
	}
	if d.Body, err = optString(r, "body"); err != nil {
		return d, err
	}
	if d.HTTPStatus, err = optStatus(r); err != nil {
		return d, err
	}
	if d.Headers, err = optHeaders(r, "headers"); err != nil {
		return d, err
	}
	if d.ResponseHeadersToAdd, err = optHeaders(r, "response_headers_to_add"); err != nil {
		return d, err
	}
	if d.RequestHeadersToRemove, err = optStrings(r, "request_headers_to_remove"); err != nil {
		return d, err
	}
	if d.QueryParametersToSet, err = optHeaders(r, "query_parameters_to_set"); err != nil {
		return d, err
	}
	if d.QueryParametersToRemove, err = optStrings(r, "query_parameters_to_remove"); err != nil {
		return d, err
	}
	if d.DynamicMetadata, err = optObject(r, "dynamic_metadata"); err != nil {
		return d, err
	}
	if d.UpdatedInput, err = optObject(r, "updated_input"); err != nil {
		return d, err
	}
	if d.TTL, err = optTTL(r); err != nil {
		return d, err
	}
	return d, nil
}

func optString(r map[string]any, key string) (string, error) {
	v, ok := r[key]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", invalid("%q is %s, want a string", key, jsonType(v))
	}
	return s, nil
}

func optStrings(r map[string]any, key string) ([]string, error) {
	v, ok := r[key]
	if !ok || v == nil {
		return nil, nil
	}
	switch v := v.(type) {
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, invalid("%q[%d] is %s, want a string", key, i, jsonType(e))
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, invalid("%q is %s, want an array of strings", key, jsonType(v))
}

func optObject(r map[string]any, key string) (map[string]any, error) {
	v, ok := r[key]
	if !ok || v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalid("%q is %s, want an object", key, jsonType(v))
	}
	return m, nil
}

// optHeaders reads the OPA-Envoy header forms: an object of string or
// string-array values, or an array of such objects. The result is sorted by
// name (stable for multi-value headers) so responses are deterministic.
func optHeaders(r map[string]any, key string) ([]Header, error) {
	v, ok := r[key]
	if !ok || v == nil {
		return nil, nil
	}
	var out []Header
	add := func(m map[string]any) error {
		for name, val := range m {
			switch val := val.(type) {
			case string:
				out = append(out, Header{name, val})
			case []any:
				for i, e := range val {
					s, ok := e.(string)
					if !ok {
						return invalid("%q: header %q value [%d] is %s, want a string", key, name, i, jsonType(e))
					}
					out = append(out, Header{name, s})
				}
			default:
				return invalid("%q: header %q is %s, want a string or an array of strings", key, name, jsonType(val))
			}
		}
		return nil
	}
	switch v := v.(type) {
	case map[string]any:
		if err := add(v); err != nil {
			return nil, err
		}
	case []any:
		for i, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, invalid("%q[%d] is %s, want an object", key, i, jsonType(e))
			}
			if err := add(m); err != nil {
				return nil, err
			}
		}
	default:
		return nil, invalid("%q is %s, want an object or an array of objects", key, jsonType(v))
	}
	slices.SortStableFunc(out, func(a, b Header) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func optStatus(r map[string]any) (int, error) {
	v, ok := r["http_status"]
	if !ok || v == nil {
		return 0, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, invalid("\"http_status\" is %s, want a number", jsonType(v))
	}
	code, err := n.Int64()
	if err != nil || http.StatusText(int(code)) == "" {
		return 0, invalid("\"http_status\" %s is not an HTTP status code", n)
	}
	return int(code), nil
}

// maxTTLSeconds is the longest ttl, in seconds, that a time.Duration holds;
// a larger number would overflow to a negative duration (time.ParseDuration
// rejects the same overflow in the string form).
const maxTTLSeconds = float64(math.MaxInt64 / int64(time.Second))

// optTTL reads "ttl" as a Go duration string ("30s") or a number of seconds.
func optTTL(r map[string]any) (time.Duration, error) {
	v, ok := r["ttl"]
	if !ok || v == nil {
		return 0, nil
	}
	switch v := v.(type) {
	case string:
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, invalid("\"ttl\" %q is not a duration such as \"30s\"", v)
		}
		return d, nil
	case json.Number:
		f, err := v.Float64()
		if err != nil || f < 0 || f > maxTTLSeconds {
			return 0, invalid("\"ttl\" %s is not a number of seconds", v)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	return 0, invalid("\"ttl\" is %s, want a duration string or seconds", jsonType(v))
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number, float64, int, int64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
