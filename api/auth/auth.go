// Package auth authenticates HTTP API callers (API keys kept hashed in the
// store, RS256 JWTs), admits them to routes by role, audits every refusal,
// and carries who they are in the request context.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"

	"github.com/gavel-dev/gavel/api/internal/reply"
)

// Roles.
const (
	RoleAdmin       = "admin"
	RolePolicyAdmin = "policy-admin"
	RoleAgent       = "agent"  // hooks, MCP, validation
	RoleViewer      = "viewer" // audit, events
)

// Principal is an authenticated caller.
type Principal struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles,omitempty"`
}

// Has reports whether p holds role (admin holds every role).
func (p Principal) Has(role string) bool {
	return slices.Contains(p.Roles, role) || slices.Contains(p.Roles, RoleAdmin)
}

type ctxKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal an authenticator put in ctx.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// Tokens authenticates static bearer tokens. Tokens are held as their
// sha256, so a lookup takes the same time whichever byte differs.
type Tokens struct {
	byHash map[[sha256.Size]byte]Principal
}

// NewTokens maps each token to its principal.
func NewTokens(tokens map[string]Principal) *Tokens {
	t := &Tokens{byHash: make(map[[sha256.Size]byte]Principal, len(tokens))}
	for tok, p := range tokens {
		t.byHash[sha256.Sum256([]byte(tok))] = p
	}
	return t
}

// Authenticate returns the principal of a bearer token.
func (t *Tokens) Authenticate(token string) (Principal, bool) {
	if token == "" {
		return Principal{}, false
	}
	p, ok := t.byHash[sha256.Sum256([]byte(token))]
	return p, ok
}

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header, or "".
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// Require admits requests with a known bearer token that holds role:
// 401 without a valid token, 403 with a token that lacks the role. A
// request an [Authenticator] already admitted (its principal is in the
// context) is only checked for the role.
func (t *Tokens) Require(role string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := FromContext(r.Context())
		if !ok {
			p, ok = t.Authenticate(BearerToken(r))
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gavel"`)
			reply.Error(w, http.StatusUnauthorized, "missing or unknown bearer token: send Authorization: Bearer <token>")
			return
		}
		if role != "" && !p.Has(role) {
			reply.Error(w, http.StatusForbidden, p.Name+" lacks the role "+role)
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), p)))
	})
}

// NewToken returns a fresh random token: 32 bytes, base64url.
func NewToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}
