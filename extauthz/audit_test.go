package extauthz

import (
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gavel-dev/gavel/policy"
)

// Every answer, over gRPC and HTTP, allowed or denied, becomes an audit
// record under its decision id.
func TestCheckIsAudited(t *testing.T) {
	recent := policy.NewRecent(10)
	s := NewServer(newService(t), Options{Logger: discardLogger, Audit: recent})
	req := func(key string) *authv3.CheckRequest {
		r := checkRequest("GET", "/api/v1/orders", map[string]string{"x-request-id": "req-1"})
		if key != "" {
			r.Attributes.Request.Http.Headers["x-api-key"] = key
		}
		r.Attributes.Request.Http.Id = "req-1"
		return r
	}
	for _, tc := range []struct {
		key, outcome, principal string
	}{{"", "deny", ""}, {"k-editor", "allow", "ed"}} {
		resp, err := s.Check(t.Context(), req(tc.key))
		if err != nil {
			t.Fatal(err)
		}
		id := resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue()
		rec, ok := recent.Get(id)
		if !ok {
			t.Fatalf("no audit record for decision %s", id)
		}
		if tc.key != "" {
			b, err := rec.InputFunc()
			if err != nil || !strings.Contains(string(b), `"x-api-key":"[REDACTED]"`) || strings.Contains(string(b), tc.key) ||
				!strings.Contains(string(b), `"/api/v1/orders"`) {
				t.Errorf("recorded input %s (%v): want the API key redacted, the rest kept", b, err)
			}
		}
		if rec.Outcome != tc.outcome || rec.Source != policy.SourceEnvoy || rec.Principal != tc.principal ||
			rec.Action != "GET" || rec.CorrelationID != "req-1" || rec.Revision == "" || len(rec.RuleIDs) == 0 || rec.Latency <= 0 {
			t.Errorf("record %+v", rec)
		}
	}
}
