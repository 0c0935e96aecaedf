package extauthz

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
)

// referenceJSON is how OPA (and opa-envoy-plugin) decodes JSON into a value.
func referenceJSON(b []byte) (ast.Value, error) {
	var doc any
	if err := util.UnmarshalJSON(b, &doc); err != nil {
		return nil, err
	}
	return ast.InterfaceToValue(doc)
}

// sameJSON checks parseJSON against the reference: both fail, or both give
// the same value with the same number text.
func sameJSON(t *testing.T, doc []byte) {
	t.Helper()
	want, wantErr := referenceJSON(doc)
	got, gotErr := parseJSON(doc)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%q: reference error %v, parseJSON error %v", doc, wantErr, gotErr)
	}
	if wantErr != nil {
		return
	}
	if ast.Compare(got, want) != 0 || got.String() != want.String() {
		t.Fatalf("%q:\nparseJSON %v\nreference %v", doc, got, want)
	}
}

func TestParseJSONTable(t *testing.T) {
	for _, doc := range []string{
		`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5e-7`, `1E+21`, `-12.30`, `123456789012345678901234567890`,
		` {"a": [1, 2.0, "x", null, true, {"b": {}}]} `, `{"a":1,"a":2}`, `"\u00e9\ud83d\ude00\ud83d"`, `"\udc00x"`,
		`"\\\"\/\b\f\n\r\t"`, "\"\xff\xfe\"", "\"a\xc3\"", "\"\xe2\x82\\u00ac\"", `"\u0000"`,
		// Refused, as by the reference.
		``, ` `, `{`, `[1,]`, `{"a":1,}`, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `tru`, `nul`, `"a`, "\"\x01\"", `"\x"`, `"\u12"`,
		`{"a" 1}`, `{1:2}`, `[1 2]`, `1 2`, `{} x`, "\xef\xbb\xbf{}", `[` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10002),
		strings.Repeat(`[`, 10000) + strings.Repeat(`]`, 10000),
	} {
		sameJSON(t, []byte(doc))
	}
}

// TestParseJSONGenerated compares parseJSON with the reference on random
// documents, valid and broken.
func TestParseJSONGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	pieces := []string{`{`, `}`, `[`, `]`, `,`, `:`, `"k"`, `"\u00e9"`, `"\ud800"`, "\"\xff\"", `1`, `-0.5e3`, `true`, `null`, ` `, `"a\nb"`, `"\\"`, `0`, `01`, `"`, `\`}
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		var b strings.Builder
		if r.IntN(2) == 0 {
			writeRandomJSON(r, &b, 0)
		} else {
			for range r.IntN(12) {
				b.WriteString(pieces[r.IntN(len(pieces))])
			}
		}
		sameJSON(t, []byte(b.String()))
	}
}

func writeRandomJSON(r *rand.Rand, b *strings.Builder, depth int) {
	switch k := r.IntN(8); {
	case depth < 4 && k == 0:
		b.WriteString("{")
		for i := range r.IntN(4) {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString([]string{`"a"`, `"b"`, `"a"`, `"\u0041"`}[r.IntN(4)] + ":")
			writeRandomJSON(r, b, depth+1)
		}
		b.WriteString("}")
	case depth < 4 && k == 1:
		b.WriteString("[")
		for i := range r.IntN(4) {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRandomJSON(r, b, depth+1)
		}
		b.WriteString("]")
	case k == 2:
		b.WriteString([]string{`0`, `-1`, `3.25`, `1e400`, `-0.0`, `12E-3`}[r.IntN(6)])
	case k == 3:
		b.WriteString([]string{`true`, `false`, `null`}[r.IntN(3)])
	default:
		b.WriteString(`"`)
		for range r.IntN(6) {
			b.WriteString([]string{"x", "é", `\n`, `\u20ac`, `\ud83d\ude00`, `\ud83d`, "\xc3", `\"`, "€"}[r.IntN(9)])
		}
		b.WriteString(`"`)
	}
}

func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}]}`, `"\ud83d\ude00"`, "\"\xff\"", `1e-7`, `[`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		sameJSON(t, doc)
	})
}

func BenchmarkParseJSON(b *testing.B) {
	doc := []byte(`{"sku":"SKU-1001","qty":2,"note":"gift","items":[{"id":1,"name":"book"},{"id":2,"name":"pen"}],"address":{"city":"Zürich","zip":"8001"}}`)
	b.Run("parseJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseJSON(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := referenceJSON(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
