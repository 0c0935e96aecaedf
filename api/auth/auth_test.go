package auth

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRequire(t *testing.T) {
	tokens := NewTokens(map[string]Principal{
		"agent-tok": {Name: "a", Roles: []string{RoleAgent}},
		"admin-tok": {Name: "root", Roles: []string{RoleAdmin}},
		"view-tok":  {Name: "v", Roles: []string{RoleViewer}},
	})
	var seen Principal
	h := tokens.Require(RoleAgent, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = FromContext(r.Context())
	}))
	for _, tc := range []struct {
		header string
		code   int
		who    string
	}{
		{"", 401, ""},
		{"Bearer", 401, ""},
		{"Basic agent-tok", 401, ""},
		{"Bearer wrong", 401, ""},
		{"Bearer view-tok", 403, ""},
		{"Bearer agent-tok", 200, "a"},
		{"bearer  agent-tok ", 200, "a"},
		{"Bearer admin-tok", 200, "root"},
	} {
		seen = Principal{}
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.code || seen.Name != tc.who {
			t.Errorf("%q: %d as %q, want %d as %q", tc.header, rec.Code, seen.Name, tc.code, tc.who)
		}
		if tc.code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%q: 401 without WWW-Authenticate", tc.header)
		}
	}
}

func TestNewToken(t *testing.T) {
	a, b := NewToken(), NewToken()
	if a == b || len(a) != 43 {
		t.Fatalf("tokens %q %q: want distinct 43-character tokens", a, b)
	}
}
