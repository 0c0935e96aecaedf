package extauthz

import (
	"bytes"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"go.uber.org/goleak"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/policy/builtin"
)

// update regenerates golden files: go test ./extauthz -run TestInputGolden -update
var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testKeys are the API keys the tests' default bundle knows.
var testKeys = map[string]builtin.Principal{
	"k-viewer": {Name: "vera", Roles: []string{"viewer"}},
	"k-editor": {Name: "ed", Roles: []string{"editor"}},
	"k-admin":  {Name: "ada", Roles: []string{"admin"}},
}

var discardLogger = slog.New(slog.DiscardHandler)

// newService is a policy service with the default bundle and testKeys active.
func newService(t testing.TB) *policy.Service {
	t.Helper()
	bundle, err := builtin.BundleWithKeys(testKeys)
	if err != nil {
		t.Fatal(err)
	}
	svc := policy.NewService(policy.Options{EvalTimeout: time.Minute, Logger: discardLogger})
	if _, err := svc.Activate(t.Context(), bundle); err != nil {
		t.Fatal(err)
	}
	return svc
}

// prettyJSON re-encodes JSON as indented JSON with sorted keys (and exact
// numbers), so golden files are stable whatever wrote them.
func prettyJSON(t testing.TB, bs []byte) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(bs))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decode %s: %v", bs, err)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// valueJSON renders an OPA value as pretty JSON with sorted keys.
func valueJSON(t testing.TB, v ast.Value) []byte {
	t.Helper()
	doc, err := ast.JSON(v)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return prettyJSON(t, bs)
}

// golden compares got with the file at path, or rewrites it under -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update if the change is intended)\n--- got\n%s\n--- want\n%s", filepath.Base(path), got, want)
	}
}

// cases lists the golden cases in dir: the names before suffix.
func cases(t *testing.T, dir, suffix string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no %s files in %s", suffix, dir)
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = filepath.Base(p)[:len(filepath.Base(p))-len(suffix)]
	}
	return names
}
