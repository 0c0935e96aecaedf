package auth

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// JWTOptions configure bearer JWT verification. Tokens are accepted only
// when signed with RS256 by one of PublicKeys or a key of the JWKS at
// JWKSURL; with neither, JWTs are refused.
type JWTOptions struct {
	// PublicKeys verify tokens (see [ReadPublicKeys] for PEM files).
	PublicKeys []*rsa.PublicKey
	// JWKSURL is a JSON Web Key Set gavel fetches at start, every
	// JWKSRefresh (default 1h), and on demand when a token names a key id
	// it does not hold (at most once per JWKSRefreshUnknown, default 1m).
	JWKSURL            string
	JWKSRefresh        time.Duration
	JWKSRefreshUnknown time.Duration
	JWKSHTTPClient     *http.Client
	// Issuer and Audience, when set, must match iss and one of aud.
	Issuer   string
	Audience string
	// RolesClaim names the claim holding the roles, a string array
	// (default "roles"). A space-separated "scope" claim also grants the
	// roles its "gavel:<role>" scopes name.
	RolesClaim string
	// Leeway allows for clock skew in exp, nbf and iat (default 30s).
	Leeway time.Duration
}

// ReadPublicKeys reads RSA public keys from PEM files (PKIX or PKCS#1
// public keys, or certificates).
func ReadPublicKeys(paths []string) ([]*rsa.PublicKey, error) {
	var keys []*rsa.PublicKey
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--jwt-public-key: %w", err)
		}
		k, err := jwt.ParseRSAPublicKeyFromPEM(b)
		if err != nil {
			return nil, fmt.Errorf("--jwt-public-key %s: %w (want an RSA public key or certificate in PEM)", p, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// jwtVerifier verifies RS256 bearer tokens.
type jwtVerifier struct {
	opts   JWTOptions
	keys   []jwt.VerificationKey // PublicKeys, as jwt.VerificationKeySet wants them
	jwks   keyfunc.Keyfunc
	parser *jwt.Parser
}

// newJWTVerifier returns nil when no key source is configured. ctx bounds
// the JWKS refresh goroutine.
func newJWTVerifier(ctx context.Context, opts JWTOptions, onRefreshError func(error)) (*jwtVerifier, error) {
	if len(opts.PublicKeys) == 0 && opts.JWKSURL == "" {
		return nil, nil
	}
	if opts.RolesClaim == "" {
		opts.RolesClaim = "roles"
	}
	if opts.Leeway == 0 {
		opts.Leeway = 30 * time.Second
	}
	v := &jwtVerifier{opts: opts}
	for _, k := range opts.PublicKeys {
		v.keys = append(v.keys, k)
	}
	if opts.JWKSURL != "" {
		every := opts.JWKSRefreshUnknown
		if every <= 0 {
			every = time.Minute
		}
		kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{opts.JWKSURL}, keyfunc.Override{
			Client:            opts.JWKSHTTPClient,
			HTTPTimeout:       5 * time.Second,
			RefreshInterval:   opts.JWKSRefresh,
			RefreshUnknownKID: rate.NewLimiter(rate.Every(every), 1),
			// A token with an unknown key id waits for no refresh the
			// limiter does not allow at once, and for a fetch at most this.
			RateLimitWaitMax: 3 * time.Second,
			RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
				return func(_ context.Context, err error) { onRefreshError(err) }
			},
		})
		if err != nil {
			return nil, fmt.Errorf("--jwks-url: %w", err)
		}
		v.jwks = kf
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(opts.Leeway),
	}
	if opts.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(opts.Issuer))
	}
	if opts.Audience != "" {
		popts = append(popts, jwt.WithAudience(opts.Audience))
	}
	v.parser = jwt.NewParser(popts...)
	return v, nil
}

// unknownKIDError: no configured key has the token's key id.
type unknownKIDError struct{ kid, why string }

func (e *unknownKIDError) Error() string {
	msg := fmt.Sprintf("unknown key id %q", e.kid)
	if e.why != "" {
		msg += ": " + e.why
	}
	return msg
}

// looksLikeJWT reports whether a credential has a JWS compact form's shape.
func looksLikeJWT(cred string) bool { return strings.Count(cred, ".") == 2 }

// jwtHeader decodes a token's header without verifying anything, to say
// precisely why a token is refused.
func jwtHeader(tok string) (alg, kid string, err error) {
	seg, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return "", "", errors.New("malformed token: header is not base64url")
	}
	var h struct {
		Alg any `json:"alg"`
		Kid any `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return "", "", errors.New("malformed token: header is not a JSON object")
	}
	alg, _ = h.Alg.(string)
	kid, _ = h.Kid.(string)
	return alg, kid, nil
}

// verify returns the principal of a valid token, or an error that says
// what is wrong with it (for the 401 body).
func (v *jwtVerifier) verify(ctx context.Context, tok string) (Principal, error) {
	alg, _, err := jwtHeader(tok)
	if err != nil {
		return Principal{}, err
	}
	if alg != "RS256" {
		return Principal{}, fmt.Errorf("algorithm %q is not accepted: gavel verifies RS256 tokens only", alg)
	}
	claims := jwt.MapClaims{}
	_, err = v.parser.ParseWithClaims(tok, claims, v.keyfunc(ctx))
	if err != nil {
		return Principal{}, describeJWTError(err, v.opts)
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return Principal{}, errors.New("token has no sub claim: gavel names callers by it")
	}
	return Principal{Name: sub, Roles: rolesOf(claims, v.opts.RolesClaim)}, nil
}

func (v *jwtVerifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if v.jwks != nil {
			if kid != "" {
				k, err := v.jwks.KeyfuncCtx(ctx)(t)
				if err == nil {
					return k, nil
				}
				if !errors.Is(err, jwkset.ErrKeyNotFound) {
					return nil, err
				}
				if len(v.keys) == 0 {
					return nil, &unknownKIDError{kid: kid, why: "not in the JWKS, even after fetching it again"}
				}
			} else {
				set, err := v.jwks.VerificationKeySet(ctx)
				if err != nil {
					return nil, err
				}
				set.Keys = append(set.Keys, v.keys...)
				return noEmptySet(set, kid)
			}
		}
		return noEmptySet(jwt.VerificationKeySet{Keys: v.keys}, kid)
	}
}

func noEmptySet(set jwt.VerificationKeySet, kid string) (any, error) {
	if len(set.Keys) == 0 {
		return nil, &unknownKIDError{kid: kid, why: "no verification keys are loaded"}
	}
	return set, nil
}

// describeJWTError says in a few words what is wrong with a token.
func describeJWTError(err error, opts JWTOptions) error {
	if u := (*unknownKIDError)(nil); errors.As(err, &u) {
		return u
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errors.New("malformed token")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errors.New("bad signature")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errors.New("token has no exp claim: gavel accepts only tokens that expire")
	case errors.Is(err, jwt.ErrTokenExpired):
		return errors.New("token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errors.New("token not valid yet (nbf is in the future)")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errors.New("token issued in the future (iat)")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Errorf("wrong audience: want %q", opts.Audience)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fmt.Errorf("wrong issuer: want %q", opts.Issuer)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return errors.New("token cannot be verified: its signing key is not available")
	}
	return errors.New("invalid token")
}

// rolesOf reads the roles claim (a string array, or one string) and the
// "gavel:<role>" entries of a space-separated scope claim.
func rolesOf(claims jwt.MapClaims, claim string) []string {
	var roles []string
	switch v := claims[claim].(type) {
	case string:
		roles = append(roles, v)
	case []any:
		for _, r := range v {
			if s, ok := r.(string); ok {
				roles = append(roles, s)
			}
		}
	}
	if scope, ok := claims["scope"].(string); ok {
		for s := range strings.FieldsSeq(scope) {
			if r, ok := strings.CutPrefix(s, "gavel:"); ok && r != "" {
				roles = append(roles, r)
			}
		}
	}
	slices.Sort(roles)
	return slices.Compact(roles)
}
