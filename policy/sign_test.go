package policy_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gavel-dev/gavel/policy"
)

func rsaPEM(t *testing.T) (priv, pub []byte) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
}

func TestSignAndVerify(t *testing.T) {
	priv, pub := rsaPEM(t)
	_, otherPub := rsaPEM(t)
	b, err := policy.LoadFS("t", fstest.MapFS{
		"app/p.rego":    {Data: []byte("package app\n\nallow := true\n")},
		"data.json":     {Data: []byte(`{"x": 1}`)},
		"a/b/data.json": {Data: []byte(`{"y": 2}`)},
	}, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := policy.Sign(b, priv, "ci", "")
	if err != nil {
		t.Fatal(err)
	}
	if signed.Revision == b.Revision || signed.Files[policy.SignaturesFile] == nil {
		t.Fatal("a signed bundle must carry its signature and have its own revision")
	}
	v, err := policy.NewVerifier(pub, "ci", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(signed); err != nil {
		t.Fatalf("verify a good signature: %v", err)
	}
	// Like opa build's output, the data is one document.
	if got := string(signed.Files["/data.json"]); got != `{"a":{"b":{"y":2}},"x":1}` || signed.Files["/a/b/data.json"] != nil {
		t.Fatalf("signed data: %s", got)
	}
	// Through a tarball and back, as an upload arrives.
	var buf strings.Builder
	if err := signed.WriteTarGz(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := policy.ReadTarGz("upload", strings.NewReader(buf.String()), policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(back); err != nil {
		t.Fatalf("verify after a tarball round trip: %v", err)
	}

	for name, tc := range map[string]struct {
		b *policy.Bundle
		v func() *policy.Verifier
	}{
		"unsigned": {b, func() *policy.Verifier { return v }},
		"tampered": {tamper(t, signed), func() *policy.Verifier { return v }},
		"other key": {signed, func() *policy.Verifier {
			o, err := policy.NewVerifier(otherPub, "ci", "")
			if err != nil {
				t.Fatal(err)
			}
			return o
		}},
	} {
		err := tc.v().Verify(tc.b)
		if !errors.Is(err, policy.ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, err)
		}
	}
	if _, err := policy.NewVerifier(pub, "", "HS999"); err == nil {
		t.Error("an unsupported algorithm was accepted")
	}
}

func tamper(t *testing.T, b *policy.Bundle) *policy.Bundle {
	t.Helper()
	files := map[string][]byte{}
	for p, d := range b.Files {
		files[p] = d
	}
	files["/app/p.rego"] = []byte("package app\n\nallow := false\n")
	out, err := policy.NewBundle(b.Source, files)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
