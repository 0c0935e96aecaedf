package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	opabundle "github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/keys"
)

// SignaturesFile is where a signed bundle keeps its signature, as OPA
// bundle signing does it: a JWT over the sha256 of every file.
const SignaturesFile = "/.signatures.json"

// ErrSignature is wrapped by every signature verification failure.
var ErrSignature = errors.New("bundle signature")

// Verifier checks bundle signatures as OPA does (`opa build --signing-key`,
// `opa run --verification-key`): RS256 (or another algorithm OPA supports)
// over the sha256 of every file, with the public key given.
type Verifier struct {
	cfg *opabundle.VerificationConfig
}

// NewVerifier verifies with publicKeyPEM under keyID (the JWT's kid; ""
// means "default", OPA's own default). alg "" means RS256.
func NewVerifier(publicKeyPEM []byte, keyID, alg string) (*Verifier, error) {
	if keyID == "" {
		keyID = "default"
	}
	if alg == "" {
		alg = "RS256"
	}
	if !keys.IsSupportedAlgorithm(alg) {
		return nil, fmt.Errorf("verification key: unsupported algorithm %q", alg)
	}
	if len(publicKeyPEM) == 0 {
		return nil, errors.New("verification key: empty")
	}
	kc := &keys.Config{Key: string(publicKeyPEM), Algorithm: alg}
	cfg := opabundle.NewVerificationConfig(map[string]*opabundle.KeyConfig{keyID: kc}, keyID, "", nil)
	return &Verifier{cfg: cfg}, nil
}

// Verify checks b's signature: it must be signed, by the key, and every
// file must match its hash. The error names what failed.
func (v *Verifier) Verify(b *Bundle) error {
	if _, ok := b.Files[SignaturesFile]; !ok {
		return fmt.Errorf("%w: the bundle is not signed (no %s)", ErrSignature, SignaturesFile[1:])
	}
	paths := make([]string, 0, len(b.Files))
	for p := range b.Files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	_, err := opabundle.NewCustomReader(&memLoader{files: b.Files, paths: paths}).
		WithBundleVerificationConfig(v.cfg).
		WithSkipBundleVerification(false).
		WithRegoVersion(ast.RegoV1).
		Read()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return nil
}

// Sign returns b signed with privateKeyPEM under keyID, as `opa build
// --signing-key` signs. Like opa build's output, the signed bundle holds
// its data as one /data.json (data files at any depth are merged into it,
// which is what the signature covers) and .signatures.json, so its
// revision differs from b's.
func Sign(b *Bundle, privateKeyPEM []byte, keyID, alg string) (*Bundle, error) {
	if keyID == "" {
		keyID = "default"
	}
	if alg == "" {
		alg = "RS256"
	}
	built := &Bundle{Source: b.Source, Files: map[string][]byte{}}
	for p, data := range b.Files {
		if p == SignaturesFile || path.Base(p) == "data.json" || path.Base(p) == "data.yaml" || path.Base(p) == "data.yml" {
			continue
		}
		built.Files[p] = data
	}
	ob, err := readOPABundle(b)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(ob.Data)
	if err != nil {
		return nil, fmt.Errorf("sign bundle: %w", err)
	}
	if ob.Data == nil {
		data = []byte("{}")
	}
	built.Files["/data.json"] = data
	if ob, err = readOPABundle(built); err != nil {
		return nil, err
	}
	if err := ob.GenerateSignature(opabundle.NewSigningConfig(string(privateKeyPEM), alg, ""), keyID, false); err != nil {
		return nil, fmt.Errorf("sign bundle: %w", err)
	}
	sig, err := json.Marshal(ob.Signatures)
	if err != nil {
		return nil, fmt.Errorf("sign bundle: %w", err)
	}
	built.Files[SignaturesFile] = sig
	return NewBundle(b.Source, built.Files)
}
