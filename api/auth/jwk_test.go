package auth

import (
	"crypto/rsa"
	"encoding/base64"
	"math/big"
)

// jwkRSA is an RSA public key as a JWK.
type jwkRSA struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
}

func toJWK(kid string, k *rsa.PublicKey) *jwkRSA {
	enc := base64.RawURLEncoding.EncodeToString
	return &jwkRSA{Kty: "RSA", Kid: kid, Alg: "RS256", Use: "sig", N: enc(k.N.Bytes()), E: enc(big.NewInt(int64(k.E)).Bytes())}
}
