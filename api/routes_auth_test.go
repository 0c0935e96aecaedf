package api

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store/sqlite"
	"github.com/gavel-dev/gavel/xds/ports"
)

type records struct {
	mu   sync.Mutex
	recs []policy.Record
}

func (r *records) Record(rec policy.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
}

func (r *records) take() []policy.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.recs
	r.recs = nil
	return out
}

// routeChecker records which route each checked request matched.
type routeChecker struct {
	*auth.Authenticator
	last string
}

func (c *routeChecker) Check(w http.ResponseWriter, r *http.Request, role, route string) (*http.Request, bool) {
	c.last = route
	return c.Authenticator.Check(w, r, role, route)
}

// requestFor builds a request a route's pattern matches.
func requestFor(pattern string) *http.Request {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = http.MethodPost, pattern
	}
	for _, v := range []string{"{name}", "{id}", "{node}"} {
		path = strings.ReplaceAll(path, v, "x")
	}
	if strings.HasSuffix(path, "/") {
		path += "x"
	}
	return httptest.NewRequest(method, path, strings.NewReader("{}"))
}

// TestAuthEveryRoute walks the route table: every route with a role
// refuses missing, malformed, unknown, revoked, expired, badly signed,
// unsigned and HMAC credentials with 401 and the wrong role with 403, and
// admits the right role; every refusal is audited. Open routes admit all.
func TestAuthEveryRoute(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "gavel.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key := func(name string, roles ...string) string {
		k, secret := auth.NewKey(name, roles, "test", time.Now())
		if err := st.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		return secret
	}
	byRole := map[string]string{}
	for _, r := range []string{auth.RoleAdmin, auth.RolePolicyAdmin, auth.RoleAgent, auth.RoleViewer} {
		byRole[r] = key("only-"+r, r)
	}
	revoked := key("revoked", auth.RoleAdmin)
	if err := st.RevokeKey(ctx, "revoked", time.Now()); err != nil {
		t.Fatal(err)
	}
	signer, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&signer.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pemPath := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(pemPath, pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := auth.ReadPublicKeys([]string{pemPath})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(exp time.Duration) jwt.MapClaims {
		return jwt.MapClaims{"sub": "jwt-admin", "roles": []string{"admin"}, "exp": time.Now().Add(exp).Unix()}
	}
	mustSign := func(m jwt.SigningMethod, k any, c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	audit := &records{}
	a, err := auth.New(ctx, auth.Options{Keys: st, Audit: audit, JWT: auth.JWTOptions{PublicKeys: pub}})
	if err != nil {
		t.Fatal(err)
	}
	checker := &routeChecker{Authenticator: a}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	h := New(Options{
		Metrics: ok, Authz: ok, Hooks: ok, Validate: ok, MCP: ok, Events: ok, Pprof: true,
		Ports:       ports.NewMemory(ports.Options{PortMin: 30000, PortMax: 30010}),
		XDSSnapshot: func(string) ([]byte, error) { return []byte("{}"), nil },
		Auth:        checker,
	})

	unauth := map[string]string{
		"no header":         "",
		"malformed header":  "Basic " + byRole[auth.RoleAdmin],
		"malformed bearer":  "Bearer two words",
		"unknown key":       "Bearer " + auth.NewAPIKey(),
		"revoked key":       "Bearer " + revoked,
		"expired JWT":       "Bearer " + mustSign(jwt.SigningMethodRS256, signer, claims(-time.Hour)),
		"JWT bad signature": "Bearer " + mustSign(jwt.SigningMethodRS256, other, claims(time.Hour)),
		"JWT alg none":      "Bearer " + mustSign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(time.Hour)),
		"HS256 JWT":         "Bearer " + mustSign(jwt.SigningMethodHS256, pubPEM, claims(time.Hour)),
	}
	do := func(pattern, header string) *httptest.ResponseRecorder {
		// A short deadline ends /debug/pprof/profile and trace, which
		// otherwise record for 30s, as soon as they are admitted.
		ctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		req := requestFor(pattern).WithContext(ctx)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	var protected, open int
	for _, rt := range Routes {
		t.Run(rt.Pattern, func(t *testing.T) {
			req := requestFor(rt.Pattern)
			role, isOpen := RouteRole(rt.Pattern, req.Method, false)
			if isOpen {
				open++
				for name, hdr := range unauth {
					if rec := do(rt.Pattern, hdr); rec.Code == 401 || rec.Code == 403 {
						t.Errorf("%s: %d on an open route", name, rec.Code)
					}
				}
				if n := len(audit.take()); n != 0 {
					t.Errorf("%d audit records on an open route", n)
				}
				return
			}
			protected++
			for name, hdr := range unauth {
				checker.last = ""
				if rec := do(rt.Pattern, hdr); rec.Code != 401 {
					t.Errorf("%s: %d, want 401 (%s)", name, rec.Code, rec.Body)
				}
				if checker.last != rt.Pattern {
					t.Errorf("%s: request matched %q, not the route", name, checker.last)
				}
			}
			wrong := auth.RoleAgent
			if role == auth.RoleAgent {
				wrong = auth.RoleViewer
			}
			if rec := do(rt.Pattern, "Bearer "+byRole[wrong]); rec.Code != 403 {
				t.Errorf("wrong role %s: %d, want 403", wrong, rec.Code)
			}
			recs := audit.take()
			if len(recs) != len(unauth)+1 {
				t.Errorf("%d audit records, want %d", len(recs), len(unauth)+1)
			}
			_, path, found := strings.Cut(rt.Pattern, " ")
			if !found {
				path = rt.Pattern
			}
			wantAction := req.Method + " " + path
			for _, r := range recs {
				if r.Source != policy.SourceAPI || r.Outcome != "deny" || r.Action != wantAction ||
					(r.ErrorCode != auth.CodeUnauthenticated && r.ErrorCode != auth.CodeForbidden) {
					t.Errorf("audit record %+v", r)
				}
			}
			for name, hdr := range map[string]string{
				"right role": "Bearer " + byRole[role],
				"admin":      "Bearer " + byRole[auth.RoleAdmin],
				"admin JWT":  "Bearer " + mustSign(jwt.SigningMethodRS256, signer, claims(time.Hour)),
			} {
				checker.last = ""
				if rec := do(rt.Pattern, hdr); rec.Code == 401 || rec.Code == 403 || checker.last != rt.Pattern {
					t.Errorf("%s: %d (%s) on route %q", name, rec.Code, rec.Body, checker.last)
				}
			}
			if n := len(audit.take()); n != 0 {
				t.Errorf("%d audit records for admitted requests", n)
			}
		})
	}
	if protected == 0 || open != 5 {
		t.Errorf("%d protected and %d open routes", protected, open)
	}
	if rec := do("GET /no-such-route", ""); rec.Code != 404 {
		t.Errorf("unknown route: %d, want 404", rec.Code)
	}
}

func TestAuthRouteRoles(t *testing.T) {
	for _, tc := range []struct {
		pattern, method string
		metricsAuth     bool
		role            string
		open            bool
	}{
		{"GET /metrics", "GET", false, "", true},
		{"GET /metrics", "GET", true, auth.RoleViewer, false},
		{"/authz/", "POST", false, "", true},
		{"GET /v1/decisions", "GET", false, auth.RoleViewer, false},
		{"GET /v1/decisions/{id}", "GET", false, auth.RoleViewer, false},
		{"GET /v1/bundles", "GET", false, auth.RoleViewer, false},
		{"POST /v1/bundles", "POST", false, auth.RolePolicyAdmin, false},
		{"POST /v1/bundles/{rev}/activate", "POST", false, auth.RolePolicyAdmin, false},
		{"GET /v1/keys", "GET", false, auth.RoleAdmin, false},
		{"POST /v1/something-new", "POST", false, auth.RoleAdmin, false},
		{"GET /v1/bundlesX", "GET", false, auth.RoleAdmin, false},
	} {
		role, open := RouteRole(tc.pattern, tc.method, tc.metricsAuth)
		if role != tc.role || open != tc.open {
			t.Errorf("%s %s: %q open=%v, want %q open=%v", tc.method, tc.pattern, role, open, tc.role, tc.open)
		}
	}
}
