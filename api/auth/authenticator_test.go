package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

// serve runs one request through a.Require(role) and returns the answer
// and the principal the handler saw.
func serve(a *Authenticator, role, header string) (*httptest.ResponseRecorder, Principal) {
	var seen Principal
	h := a.Require(role, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = FromContext(r.Context())
	}))
	req := httptest.NewRequest(http.MethodPost, "/v1/hooks/claude-code", nil)
	if header != "" {
		req.Header.Set("Authorization", header)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, seen
}

func errorOf(rec *httptest.ResponseRecorder) string {
	var e struct{ Error string }
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	return e.Error
}

func TestAuthAPIKeys(t *testing.T) {
	st := openStore(t)
	agent := addKey(t, st, "agent-1", RoleAgent)
	viewer := addKey(t, st, "viewer-1", RoleViewer)
	admin := addKey(t, st, "root", RoleAdmin)
	revoked := addKey(t, st, "old", RoleAgent)
	if err := st.RevokeKey(t.Context(), "old", time.Now()); err != nil {
		t.Fatal(err)
	}
	audit := &auditLog{}
	a, err := New(t.Context(), Options{Keys: st, Audit: audit})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, header string
		code         int
		who, errHas  string
	}{
		{"missing", "", 401, "", "missing bearer token"},
		{"basic scheme", "Basic " + agent, 401, "", "malformed"},
		{"bearer without credential", "Bearer", 401, "", "malformed"},
		{"two words", "Bearer " + agent + " x", 401, "", "malformed"},
		{"unknown key", "Bearer " + NewAPIKey(), 401, "", "unknown bearer token"},
		{"revoked key", "Bearer " + revoked, 401, "", "revoked"},
		{"wrong role", "Bearer " + viewer, 403, "", "lacks the role agent"},
		{"right role", "Bearer " + agent, 200, "agent-1", ""},
		{"scheme case and spaces", "bearer   " + agent + "  ", 200, "agent-1", ""},
		{"admin holds every role", "Bearer " + admin, 200, "root", ""},
		{"jwt without jwt config", "Bearer a.b.c", 401, "", "JWTs are not accepted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, who := serve(a, RoleAgent, tc.header)
			if rec.Code != tc.code || who.Name != tc.who {
				t.Fatalf("%d as %q (%s), want %d as %q", rec.Code, who.Name, rec.Body, tc.code, tc.who)
			}
			if !strings.Contains(errorOf(rec), tc.errHas) {
				t.Errorf("error %q does not say %q", errorOf(rec), tc.errHas)
			}
			wa := rec.Header().Get("WWW-Authenticate")
			switch {
			case tc.code == 401 && tc.name == "missing" && wa != `Bearer realm="gavel"`:
				t.Errorf("WWW-Authenticate %q", wa)
			case tc.code == 401 && tc.name != "missing" && !strings.Contains(wa, `error="invalid_token", error_description="`):
				t.Errorf("WWW-Authenticate %q: want error=invalid_token", wa)
			case tc.code == 403 && !strings.Contains(wa, `error="insufficient_scope"`):
				t.Errorf("WWW-Authenticate %q: want error=insufficient_scope", wa)
			}
		})
	}
	recs := audit.all()
	var refused int
	for _, r := range recs {
		if r.Source != policy.SourceAPI || r.Outcome != "deny" || r.Action != "POST /v1/hooks/claude-code" {
			t.Errorf("audit record %+v", r)
		}
		refused++
		if r.ErrorCode == CodeForbidden && r.Principal != "viewer-1" {
			t.Errorf("403 record names %q, want viewer-1", r.Principal)
		}
		if strings.Contains(strings.Join(r.Reasons, " "), "revoked") && r.Principal != "old" {
			t.Errorf("revoked-key record names %q, want old", r.Principal)
		}
	}
	if refused != 8 {
		t.Errorf("%d refusals audited, want 8", refused)
	}
}

// countingKeys counts TouchKey calls and can fail lookups.
type countingKeys struct {
	store.Keys
	touches atomic.Int32
	lookups atomic.Int32
	down    atomic.Bool
}

func (c *countingKeys) TouchKey(ctx context.Context, id string, at time.Time) error {
	c.touches.Add(1)
	return c.Keys.TouchKey(ctx, id, at)
}

func (c *countingKeys) KeyByHash(ctx context.Context, h []byte) (store.Key, error) {
	c.lookups.Add(1)
	if c.down.Load() {
		return store.Key{}, context.DeadlineExceeded
	}
	return c.Keys.KeyByHash(ctx, h)
}

func TestKeyLastUsedIsRecordedCoalescedAndOffThePath(t *testing.T) {
	st := openStore(t)
	keys := &countingKeys{Keys: st}
	secret := addKey(t, st, "agent-1", RoleAgent)
	a, err := New(t.Context(), Options{Keys: keys, KeyCacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	// Before Run, uses only queue: nothing blocks.
	for range 1000 {
		if rec, _ := serve(a, RoleAgent, "Bearer "+secret); rec.Code != 200 {
			t.Fatal(rec.Code)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ks, err := st.ListKeys(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !ks[0].LastUsed.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("last used never recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if n := keys.touches.Load(); n != 1 {
		t.Errorf("%d store writes for 1000 uses within a minute, want 1", n)
	}
}

func TestKeyStoreOutage(t *testing.T) {
	st := openStore(t)
	keys := &countingKeys{Keys: st}
	known := addKey(t, st, "agent-1", RoleAgent)
	now := time.Now()
	clock := func() time.Time { return now }
	a, err := New(t.Context(), Options{Keys: keys, KeyCacheTTL: time.Second, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if rec, _ := serve(a, RoleAgent, "Bearer "+known); rec.Code != 200 {
		t.Fatal(rec.Code)
	}
	keys.down.Store(true)
	now = now.Add(time.Hour)
	// A key seen before keeps working, stale, while the store is down;
	// one never seen cannot be checked: 503, not 401.
	if rec, _ := serve(a, RoleAgent, "Bearer "+known); rec.Code != 200 {
		t.Errorf("known key during outage: %d", rec.Code)
	}
	if rec, _ := serve(a, RoleAgent, "Bearer "+NewAPIKey()); rec.Code != 503 {
		t.Errorf("unseen key during outage: %d, want 503", rec.Code)
	}
	// The stale key is served for another TTL without asking the store on
	// every request (each ask would wait for the store's timeout).
	before := keys.lookups.Load()
	for range 5 {
		if rec, _ := serve(a, RoleAgent, "Bearer "+known); rec.Code != 200 {
			t.Fatalf("known key during outage: %d", rec.Code)
		}
	}
	if asked := keys.lookups.Load() - before; asked != 0 {
		t.Errorf("the store was asked %d times within the TTL during the outage", asked)
	}
}

func TestEnsureKeyIsIdempotentAndKeepsRevocation(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	tok := NewToken()
	k1, err := EnsureKey(ctx, st, tok, "local-agent", []string{RoleAgent}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k2, err := EnsureKey(ctx, st, tok, "local-agent", []string{RoleAgent}, time.Now())
	if err != nil || k2.ID != k1.ID {
		t.Fatalf("second ensure: %v, %s != %s", err, k2.ID, k1.ID)
	}
	if err := st.RevokeKey(ctx, k1.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	k3, err := EnsureKey(ctx, st, tok, "local-agent", []string{RoleAgent}, time.Now())
	if err != nil || k3.RevokedAt.IsZero() {
		t.Fatalf("ensure after revoke: %v, revoked %v: a revoked key must stay revoked", err, k3.RevokedAt)
	}
	// A replaced token file gets its own key beside the old one.
	k4, err := EnsureKey(ctx, st, NewToken(), "local-agent", []string{RoleAgent}, time.Now())
	if err != nil || k4.ID == k1.ID || !strings.HasPrefix(k4.Name, "local-agent-") {
		t.Fatalf("ensure of a new token: %+v, %v", k4, err)
	}
	ks, _ := st.ListKeys(ctx)
	if len(ks) != 2 {
		t.Errorf("%d keys, want 2", len(ks))
	}
}

func TestNewAPIKeyFormat(t *testing.T) {
	k, secret := NewKey("n", []string{RoleViewer}, "me", time.Now())
	if !strings.HasPrefix(secret, "gvl_") || len(secret) != 47 || !isToken68(secret) {
		t.Fatalf("key %q", secret)
	}
	if k.Prefix != secret[:12] || string(k.Hash) != string(HashKey(secret)) || strings.Contains(k.Prefix, secret[12:]) {
		t.Fatalf("stored form %+v", k)
	}
}

// jwtAuth is an authenticator that verifies against rsaA's public key.
func jwtAuth(t testing.TB, opts JWTOptions) *Authenticator {
	t.Helper()
	a, _, _ := testRSA(t)
	keys, err := ReadPublicKeys([]string{writePEM(t, &a.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	opts.PublicKeys = keys
	au, err := New(context.Background(), Options{JWT: opts})
	if err != nil {
		t.Fatal(err)
	}
	return au
}

func TestJWTVerification(t *testing.T) {
	ka, kb, _ := testRSA(t)
	a := jwtAuth(t, JWTOptions{Issuer: "https://idp.example", Audience: "gavel"})
	now := time.Now()
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "alice", "iss": "https://idp.example", "aud": "gavel", "roles": []string{"agent"}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	for _, tc := range []struct {
		name   string
		tok    string
		code   int
		errHas string
	}{
		{"valid", sign(t, ka, "", good()), 200, ""},
		{"scope roles", sign(t, ka, "", with("roles", nil)), 403, "lacks the role agent"},
		{"scope gavel:agent", sign(t, ka, "", with("scope", "openid gavel:agent")), 200, ""},
		{"roles as one string", sign(t, ka, "", with("roles", "agent")), 200, ""},
		{"wrong role", sign(t, ka, "", with("roles", []string{"viewer"})), 403, "lacks the role"},
		{"expired", sign(t, ka, "", with("exp", now.Add(-time.Hour).Unix())), 401, "expired"},
		{"expired within leeway", sign(t, ka, "", with("exp", now.Add(-10*time.Second).Unix())), 200, ""},
		{"no exp", sign(t, ka, "", with("exp", nil)), 401, "no exp"},
		{"not yet valid", sign(t, ka, "", with("nbf", now.Add(time.Hour).Unix())), 401, "not valid yet"},
		{"issued in the future", sign(t, ka, "", with("iat", now.Add(time.Hour).Unix())), 401, "issued in the future"},
		{"wrong audience", sign(t, ka, "", with("aud", "other")), 401, "wrong audience"},
		{"wrong issuer", sign(t, ka, "", with("iss", "https://evil.example")), 401, "wrong issuer"},
		{"no sub", sign(t, ka, "", with("sub", nil)), 401, "no sub"},
		{"bad signature (other key)", sign(t, kb, "", good()), 401, "bad signature"},
		{"tampered payload", tamper(sign(t, ka, "", good())), 401, "bad signature"},
		{"alg none", noneToken(t, good()), 401, `algorithm "none" is not accepted`},
		{"HS256 keyed with the public key", hs256Token(t, &ka.PublicKey, good()), 401, `algorithm "HS256" is not accepted`},
		{"malformed header", "e30x.e30.e30", 401, "malformed"},
		{"malformed payload", strings.Split(sign(t, ka, "", good()), ".")[0] + ".!!!.x", 401, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, who := serve(a, RoleAgent, "Bearer "+tc.tok)
			if rec.Code != tc.code {
				t.Fatalf("%d (%s), want %d", rec.Code, rec.Body, tc.code)
			}
			if tc.code == 200 && who.Name != "alice" {
				t.Errorf("principal %q, want alice", who.Name)
			}
			if !strings.Contains(errorOf(rec), tc.errHas) {
				t.Errorf("error %q does not say %q", errorOf(rec), tc.errHas)
			}
			if tc.code == 401 && !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

// tamper changes the payload of a token (sub alice -> mallory) and keeps
// its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	b, _ := jwt.NewParser().DecodeSegment(parts[1])
	var c map[string]any
	_ = json.Unmarshal(b, &c)
	c["sub"] = "mallory"
	nb, _ := json.Marshal(c)
	parts[1] = base64.RawURLEncoding.EncodeToString(nb)
	return strings.Join(parts, ".")
}

// jwksServer serves a JWK set whose keys the test changes.
type jwksServer struct {
	mu   sync.Mutex
	keys map[string]*rsaPub
	hits atomic.Int32
	*httptest.Server
}

type rsaPub = jwkRSA

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{keys: map[string]*rsaPub{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		set := struct {
			Keys []*jwkRSA `json:"keys"`
		}{}
		for _, k := range s.keys {
			set.Keys = append(set.Keys, k)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys map[string]*rsaPub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = keys
}

func TestJWTJWKSRotation(t *testing.T) {
	ka, kb, kc := testRSA(t)
	srv := newJWKSServer(t)
	srv.set(map[string]*rsaPub{"k1": toJWK("k1", &ka.PublicKey)})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a, err := New(ctx, Options{JWT: JWTOptions{JWKSURL: srv.URL, JWKSRefreshUnknown: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	claims := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "svc", "roles": []string{"viewer"}, "exp": time.Now().Add(time.Hour).Unix()}
	}
	check := func(tok string, code int, errHas string) {
		t.Helper()
		rec, _ := serve(a, RoleViewer, "Bearer "+tok)
		if rec.Code != code || !strings.Contains(errorOf(rec), errHas) {
			t.Fatalf("%d %s, want %d %q", rec.Code, rec.Body, code, errHas)
		}
	}
	check(sign(t, ka, "k1", claims()), 200, "")
	check(sign(t, kb, "k1", claims()), 401, "bad signature")
	check(sign(t, kc, "nope", claims()), 401, `unknown key id "nope"`)
	// The issuer rotates to k2: a token naming k2 makes gavel fetch the
	// set again, at once.
	srv.set(map[string]*rsaPub{"k2": toJWK("k2", &kb.PublicKey)})
	time.Sleep(2 * time.Millisecond) // let the unknown-kid limiter allow a fetch
	check(sign(t, kb, "k2", claims()), 200, "")
	check(sign(t, ka, "k1", claims()), 401, `unknown key id "k1"`)
	if srv.hits.Load() < 3 {
		t.Errorf("JWKS fetched %d times, want the start and each unknown kid", srv.hits.Load())
	}
}

func TestAuthParseBearer(t *testing.T) {
	for _, h := range []string{"", "Bearer", "Bearer ", "Token x", "Bearer a\x00b", "Bearer a b", "Bearer ==", "Bearer " + strings.Repeat("a", maxCredential+1)} {
		if c, f := parseBearer(h); f == nil || f.Status != 401 {
			t.Errorf("%q: credential %q accepted", h, c)
		}
	}
	for h, want := range map[string]string{"Bearer abc": "abc", "BEARER a.b.c": "a.b.c", "Bearer dGVzdA==": "dGVzdA=="} {
		if c, f := parseBearer(h); f != nil || c != want {
			t.Errorf("%q: %q, %v", h, c, f)
		}
	}
}

// memKeys is an in-memory store.Keys for the fuzz target.
type memKeys struct {
	store.Keys
	byHash map[string]store.Key
}

func (m *memKeys) KeyByHash(_ context.Context, h []byte) (store.Key, error) {
	if k, ok := m.byHash[string(h)]; ok {
		return k, nil
	}
	return store.Key{}, store.ErrNotFound
}

func (m *memKeys) TouchKey(context.Context, string, time.Time) error { return nil }

func FuzzAuthBearer(f *testing.F) {
	ka, _, _ := testRSA(f)
	known, secret := NewKey("agent", []string{RoleAgent}, "fuzz", time.Now())
	keys := &memKeys{byHash: map[string]store.Key{string(known.Hash): known}}
	pemPath := writePEM(f, &ka.PublicKey)
	pub, err := ReadPublicKeys([]string{pemPath})
	if err != nil {
		f.Fatal(err)
	}
	a, err := New(context.Background(), Options{Keys: keys, JWT: JWTOptions{PublicKeys: pub}, KeyCacheTTL: -1})
	if err != nil {
		f.Fatal(err)
	}
	c := jwt.MapClaims{"sub": "x", "roles": []string{"admin"}}
	for _, s := range []string{
		"", "Bearer", "Bearer " + NewAPIKey(), "Bearer a.b.c", "Basic Zm9vOmJhcg==",
		"Bearer " + sign(f, ka, "", jwt.MapClaims{"sub": "x", "exp": time.Now().Add(-time.Hour).Unix()}),
		"Bearer " + noneToken(f, c), "Bearer " + hs256Token(f, &ka.PublicKey, c),
		"Bearer " + tamper(sign(f, ka, "k", jwt.MapClaims{"sub": "x", "exp": 1})),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header["Authorization"] = []string{header}
		p, fail := a.Authenticate(req)
		if fail == nil {
			cred, _ := parseBearer(header)
			if cred != secret {
				t.Fatalf("authenticated %q as %+v", header, p)
			}
			return
		}
		if fail.Status != 401 || fail.Message == "" {
			t.Fatalf("%q: failure %+v", header, fail)
		}
	})
}
