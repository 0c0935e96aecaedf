package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/sqlite"
)

// Test keys are generated once: RSA generation is slow.
var (
	rsaOnce    sync.Once
	rsaA, rsaB *rsa.PrivateKey
	rsaC       *rsa.PrivateKey
)

func testRSA(t testing.TB) (a, b, c *rsa.PrivateKey) {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		for _, k := range []**rsa.PrivateKey{&rsaA, &rsaB, &rsaC} {
			if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err)
			}
		}
	})
	return rsaA, rsaB, rsaC
}

func writePEM(t testing.TB, k *rsa.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sign makes an RS256 token with claims.
func sign(t testing.TB, k *rsa.PrivateKey, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// noneToken is an unsigned token (alg none).
func noneToken(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hs256Token is the algorithm confusion attack: an HMAC token keyed with
// the bytes of the RSA public key a verifier holds.
func hs256Token(t testing.TB, pub *rsa.PublicKey, claims jwt.MapClaims) string {
	t.Helper()
	der, _ := x509.MarshalPKIXPublicKey(pub)
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "gavel.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// addKey stores a fresh key with roles and returns it.
func addKey(t testing.TB, keys store.Keys, name string, roles ...string) string {
	t.Helper()
	k, secret := NewKey(name, roles, "test", time.Now())
	if err := keys.CreateKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return secret
}

// auditLog collects audit records.
type auditLog struct {
	mu   sync.Mutex
	recs []policy.Record
}

func (a *auditLog) Record(r policy.Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, r)
}

func (a *auditLog) all() []policy.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]policy.Record(nil), a.recs...)
}
