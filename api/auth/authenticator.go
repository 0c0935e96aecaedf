package auth

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gavel-dev/gavel/api/internal/reply"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

// Options configure an [Authenticator]. Zero values mean defaults.
type Options struct {
	// Keys holds the API keys; nil refuses every API key.
	Keys store.Keys
	// KeyCacheTTL is how long a key looked up in the store is trusted
	// before it is looked up again (default 5s; negative: every request
	// looks it up). It bounds how long a revoked key keeps working on a
	// replica that saw it just before.
	KeyCacheTTL time.Duration
	// TouchInterval coalesces last-used updates: at most one store write
	// per key per interval (default 1m).
	TouchInterval time.Duration
	// JWT configures bearer JWTs; with no key source JWTs are refused.
	JWT JWTOptions
	// Audit receives a record of every refusal (401, 403).
	Audit policy.Sink
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Authenticator authenticates API callers by an
// "Authorization: Bearer <credential>" header, where the credential is an
// API key (looked up by its sha256 in the store) or an RS256 JWT; and
// admits them to routes by role. Only the Authorization header is read
// (no X-Api-Key, no query parameter: those end up in logs and caches).
type Authenticator struct {
	opts  Options
	log   *slog.Logger
	keys  *keyLookup
	touch *toucher
	jwt   *jwtVerifier
	now   func() time.Time
}

// New builds an Authenticator. ctx bounds the JWKS refresh goroutine
// (when a JWKS URL is configured); last-used times are written by
// [Authenticator.Run].
func New(ctx context.Context, opts Options) (*Authenticator, error) {
	a := &Authenticator{opts: opts, log: opts.Logger, now: opts.Now}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	if opts.Keys != nil {
		ttl := opts.KeyCacheTTL
		if ttl == 0 {
			ttl = 5 * time.Second
		}
		a.keys = newKeyLookup(opts.Keys, ttl, 4096, a.now)
		interval := opts.TouchInterval
		if interval <= 0 {
			interval = time.Minute
		}
		a.touch = newToucher(opts.Keys, interval, a.log)
	}
	v, err := newJWTVerifier(ctx, opts.JWT, func(err error) {
		a.log.Warn("JWKS not refreshed", "url", opts.JWT.JWKSURL, "err", err)
	})
	if err != nil {
		return nil, err
	}
	a.jwt = v
	return a, nil
}

// Run records API key use in the store until ctx ends.
func (a *Authenticator) Run(ctx context.Context) error {
	if a.touch == nil {
		<-ctx.Done()
		return nil
	}
	return a.touch.run(ctx)
}

// Failure codes: they are the audit records' error codes.
const (
	CodeUnauthenticated = "unauthenticated"  // 401
	CodeForbidden       = "forbidden"        // 403
	CodeUnavailable     = "auth_unavailable" // 503: credentials could not be checked
)

// Failure is why a request was refused.
type Failure struct {
	Status int
	Code   string
	// Message says what was wrong, for the caller.
	Message string
	// Missing: no credentials were sent at all.
	Missing bool
}

func (f *Failure) Error() string { return f.Message }

func unauthenticated(msg string) *Failure {
	return &Failure{Status: http.StatusUnauthorized, Code: CodeUnauthenticated, Message: msg}
}

// maxCredential bounds a credential's length: no API key or JWT gavel
// accepts comes close.
const maxCredential = 8192

// credential returns the credential of the request's Authorization header.
func credential(r *http.Request) (string, *Failure) {
	hs := r.Header.Values("Authorization")
	switch len(hs) {
	case 0:
		f := unauthenticated("missing bearer token: send Authorization: Bearer <API key or JWT>")
		f.Missing = true
		return "", f
	case 1:
	default:
		return "", unauthenticated("malformed credentials: more than one Authorization header")
	}
	return parseBearer(hs[0])
}

// parseBearer returns the credential of an Authorization header value.
func parseBearer(h string) (string, *Failure) {
	scheme, cred, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", unauthenticated("malformed credentials: want Authorization: Bearer <API key or JWT>")
	}
	cred = strings.TrimSpace(cred)
	switch {
	case cred == "":
		return "", unauthenticated("malformed credentials: the Bearer credential is empty")
	case len(cred) > maxCredential:
		return "", unauthenticated("malformed credentials: the Bearer credential is too long")
	case !isToken68(cred):
		return "", unauthenticated("malformed credentials: the Bearer credential has characters no API key or JWT has")
	}
	return cred, nil
}

// isToken68 reports whether s is an RFC 7235 token68: the alphabet of
// base64, base64url and JWTs, with '=' padding only at the end.
func isToken68(s string) bool {
	s = strings.TrimRight(s, "=")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// Authenticate returns the principal of the request's credentials.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, *Failure) {
	cred, f := credential(r)
	if f != nil {
		return Principal{}, f
	}
	return a.authenticate(r.Context(), cred)
}

func (a *Authenticator) authenticate(ctx context.Context, cred string) (Principal, *Failure) {
	if looksLikeJWT(cred) {
		if a.jwt == nil {
			return Principal{}, unauthenticated("JWTs are not accepted here: gavel has no --jwt-public-key or --jwks-url configured")
		}
		p, err := a.jwt.verify(ctx, cred)
		if err != nil {
			return Principal{}, unauthenticated(err.Error())
		}
		return p, nil
	}
	if a.keys == nil {
		return Principal{}, unauthenticated("unknown bearer token: no API key has it")
	}
	k, found, err := a.keys.lookup(ctx, HashKey(cred))
	switch {
	case err != nil:
		a.log.Error("API key not checked", "err", err)
		return Principal{}, &Failure{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
			Message: "API keys cannot be checked right now: the store is unavailable; retry"}
	case !found:
		return Principal{}, unauthenticated("unknown bearer token: no API key has it")
	case !k.RevokedAt.IsZero():
		return Principal{Name: k.Name}, unauthenticated("API key " + k.Name + " (" + k.ID + ") is revoked")
	}
	a.touch.used(k.ID, a.now())
	return Principal{Name: k.Name, Roles: k.Roles}, nil
}

// Check authenticates r and admits it when its principal holds role. On
// success it returns r carrying the principal (FromContext); otherwise it
// has answered (401, 403 or 503) and audited the refusal. route names
// what was asked for in the audit record ("POST /v1/bundles").
func (a *Authenticator) Check(w http.ResponseWriter, r *http.Request, role, route string) (*http.Request, bool) {
	p, f := a.Authenticate(r)
	if f == nil && role != "" && !p.Has(role) {
		f = &Failure{Status: http.StatusForbidden, Code: CodeForbidden,
			Message: fmt.Sprintf("%s lacks the role %s that %s needs", p.Name, role, route)}
	}
	if f != nil {
		a.refuse(w, r, p, f, route)
		return r, false
	}
	return r.WithContext(NewContext(r.Context(), p)), true
}

// Require admits requests whose principal holds role (admin holds every
// role): 401 without valid credentials, 403 without the role.
func (a *Authenticator) Require(role string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := r.Pattern
		if route == "" {
			route = r.URL.Path
		}
		if r, ok := a.Check(w, r, role, route); ok {
			next.ServeHTTP(w, r)
		}
	})
}

func (a *Authenticator) refuse(w http.ResponseWriter, r *http.Request, p Principal, f *Failure, route string) {
	switch f.Status {
	case http.StatusUnauthorized:
		if f.Missing {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gavel"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gavel", error="invalid_token", error_description="`+quotable(f.Message)+`"`)
		}
	case http.StatusForbidden:
		w.Header().Set("WWW-Authenticate", `Bearer realm="gavel", error="insufficient_scope", error_description="`+quotable(f.Message)+`"`)
	}
	reply.Error(w, f.Status, f.Message)
	if a.opts.Audit == nil {
		return
	}
	outcome := "deny"
	if f.Status == http.StatusServiceUnavailable {
		outcome = "error"
	}
	a.opts.Audit.Record(policy.Record{
		ID:            policy.NewDecisionID(),
		Time:          a.now().UTC(),
		Source:        policy.SourceAPI,
		Principal:     p.Name,
		Action:        r.Method + " " + routePath(route),
		Resource:      r.URL.Path,
		Outcome:       outcome,
		ErrorCode:     f.Code,
		Reasons:       []string{f.Message},
		CorrelationID: r.Header.Get("X-Request-Id"),
	})
}

// routePath is a mux pattern without its method ("GET /v1/x" -> "/v1/x").
func routePath(pattern string) string {
	if _, p, ok := strings.Cut(pattern, " "); ok {
		return strings.TrimSpace(p)
	}
	return pattern
}

// quotable makes s safe inside a quoted-string header parameter.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return '\''
		}
		return r
	}, s)
}
