package policy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestResult is the outcome of one Rego test rule.
type TestResult struct {
	Package  string        `json:"package"`
	Name     string        `json:"name"`
	File     string        `json:"file"`
	Row      int           `json:"row"`
	Passed   bool          `json:"passed"`
	Skipped  bool          `json:"skipped,omitempty"`
	Error    string        `json:"error,omitempty"`
	Output   string        `json:"output,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

func (r TestResult) String() string {
	status := "PASS"
	switch {
	case r.Skipped:
		status = "SKIP"
	case r.Error != "":
		status = "ERROR"
	case !r.Passed:
		status = "FAIL"
	}
	s := fmt.Sprintf("%s: %s.%s (%s:%d) %v", status, strings.TrimPrefix(r.Package, "data."), r.Name, r.File, r.Row, r.Duration.Round(time.Microsecond))
	if r.Error != "" {
		s += "\n  " + r.Error
	}
	return s
}

// RunTests runs the bundle's Rego tests (rules named test_*, as `opa test`
// does) against the bundle's own data. A bundle that does not compile
// returns a *CompileError.
func RunTests(ctx context.Context, b *Bundle) ([]TestResult, error) {
	ob, modules, err := parseBundle(b)
	if err != nil {
		return nil, err
	}
	store := inmem.NewFromObject(ob.Data)
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, fmt.Errorf("run tests: %w", err)
	}
	defer store.Abort(ctx, txn)
	compiler := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1).WithEnablePrintStatements(true)
	ch, err := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetModules(modules).
		SetDefaultRegoVersion(ast.RegoV1).
		CapturePrintOutput(true).
		RunTests(ctx, txn)
	if err != nil {
		return nil, &CompileError{Source: b.Source, Err: err}
	}
	var out []TestResult
	for r := range ch {
		tr := TestResult{
			Package:  r.Package,
			Name:     r.Name,
			Passed:   r.Pass(),
			Skipped:  r.Skip,
			Output:   string(r.Output),
			Duration: r.Duration,
		}
		if r.Location != nil {
			tr.File = strings.TrimPrefix(r.Location.File, "/")
			tr.Row = r.Location.Row
		}
		if r.Error != nil {
			tr.Error = r.Error.Error()
		}
		out = append(out, tr)
	}
	return out, nil
}
