package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	opabundle "github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader/filter"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// Errors a decision can fail with. Callers branch on them with errors.Is;
// [ReasonCode] turns them into metric labels and reason codes.
var (
	ErrNoActiveBundle = errors.New("no active policy bundle")
	ErrUndefined      = errors.New("undefined decision")
	ErrUnknownEntry   = errors.New("unknown entry point")
	ErrBadInput       = errors.New("input cannot be built")
)

// EntryPoint is one compiled entry point of an engine.
type EntryPoint struct {
	// Path is the slash form, "envoy/authz/allow".
	Path   string
	Config EntryPointConfig
	// Declared reports whether the bundle marks it `entrypoint: true`.
	Declared bool
	// Served reports whether requests may select it: the bundle declares it,
	// or the server was configured with it (CompileOptions.EntryPoints).
	// Other rules (helpers, tests) are reachable only from tools.
	Served bool
	// NotCacheable is empty when decisions may be cached; otherwise it says
	// why not, with file and line.
	NotCacheable []string

	ref       ast.Ref
	query     rego.PreparedEvalQuery
	redaction Redaction // Config.Sensitive, built once
	// keep lists the cache_key paths a projected input is built from;
	// projectable is false when the input cannot be projected.
	keep        []int
	projectable bool
}

// Cacheable reports whether decisions of this entry point may be cached.
func (ep *EntryPoint) Cacheable() bool { return len(ep.NotCacheable) == 0 }

// CompileOptions tune [Compile]. Zero values mean defaults.
type CompileOptions struct {
	// EntryPoints are compiled in addition to the ones the bundle declares,
	// when rules exist at their paths (e.g. "envoy/authz/allow").
	EntryPoints []string
}

// Engine is one compiled bundle revision. It is immutable and safe for
// concurrent use; entry points the bundle did not declare are prepared on
// first use, once.
type Engine struct {
	revision string
	source   string
	manifest opabundle.Manifest
	compiler *ast.Compiler
	store    storage.Store
	modules  map[string]*ast.Module
	data     map[string]any
	compiled time.Time

	configs map[string]EntryPointConfig

	mu      sync.RWMutex
	entries map[string]*EntryPoint
}

// Revision is the bundle's content hash.
func (e *Engine) Revision() string { return e.revision }

// Source names where the bundle came from.
func (e *Engine) Source() string { return e.source }

// CompiledAt is when the engine was built.
func (e *Engine) CompiledAt() time.Time { return e.compiled }

// Manifest is the bundle's .manifest (roots, the author's revision, metadata).
func (e *Engine) Manifest() opabundle.Manifest { return e.manifest }

// Compiler exposes the compiled modules, for tools that inspect rules.
func (e *Engine) Compiler() *ast.Compiler { return e.compiler }

// EntryPoints lists the prepared entry points, sorted by path.
func (e *Engine) EntryPoints() []*EntryPoint {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]*EntryPoint, 0, len(e.entries))
	for _, ep := range e.entries {
		out = append(out, ep)
	}
	slices.SortFunc(out, func(a, b *EntryPoint) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// CompileError is a bundle that failed to parse or compile. Its message is
// the compiler's, with file and line.
type CompileError struct {
	Source string
	Err    error
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("bundle %s rejected: %v", e.Source, e.Err)
}

func (e *CompileError) Unwrap() error { return e.Err }

// Compile parses, checks and compiles a bundle, and prepares every entry
// point it declares plus opts.EntryPoints.
func Compile(ctx context.Context, b *Bundle, opts CompileOptions) (*Engine, error) {
	ob, modules, err := parseBundle(b)
	if err != nil {
		return nil, err
	}
	compiler := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1).WithEnablePrintStatements(true)
	if compiler.Compile(modules); compiler.Failed() {
		return nil, &CompileError{Source: b.Source, Err: compiler.Errors}
	}
	configs, declared, err := entryPointAnnotations(compiler)
	if err != nil {
		return nil, &CompileError{Source: b.Source, Err: err}
	}
	e := &Engine{
		revision: b.Revision,
		source:   b.Source,
		manifest: ob.Manifest,
		compiler: compiler,
		store:    inmem.NewFromObjectWithOpts(ob.Data, inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true)),
		modules:  modules,
		data:     ob.Data,
		compiled: time.Now(),
		configs:  configs,
		entries:  map[string]*EntryPoint{},
	}
	paths := slices.Sorted(func(yield func(string) bool) {
		for p := range declared {
			if !yield(p) {
				return
			}
		}
	})
	for _, p := range paths {
		if _, err := e.prepare(ctx, p, true, true); err != nil {
			return nil, &CompileError{Source: b.Source, Err: err}
		}
	}
	for _, p := range opts.EntryPoints {
		ref, err := EntryPointRef(p)
		if err != nil {
			return nil, &CompileError{Source: b.Source, Err: err}
		}
		if len(compiler.GetRules(ref)) == 0 {
			continue // this bundle does not serve that entry point
		}
		if _, err := e.prepare(ctx, EntryPointPath(ref), declared[EntryPointPath(ref)], true); err != nil {
			return nil, &CompileError{Source: b.Source, Err: err}
		}
	}
	return e, nil
}

// ServedEntryPoint returns the entry point at path if requests may select
// it (see [EntryPoint.Served]); otherwise ErrUnknownEntry says how to make
// it one. It never prepares anything.
func (e *Engine) ServedEntryPoint(path string) (*EntryPoint, error) {
	e.mu.RLock()
	ep, ok := e.entries[path]
	e.mu.RUnlock()
	if !ok {
		if ref, err := EntryPointRef(path); err == nil && EntryPointPath(ref) != path {
			return e.ServedEntryPoint(EntryPointPath(ref))
		}
	}
	if !ok || !ep.Served {
		return nil, fmt.Errorf("%w: %q is not an entry point of bundle %s: mark its rule `entrypoint: true` in METADATA, or configure it (--entry-point)",
			ErrUnknownEntry, path, shortRevision(e.revision))
	}
	return ep, nil
}

// EntryPoint returns the prepared entry point at path, preparing any rule on
// first use (for tools such as policy eval). It fails with ErrUnknownEntry
// when no rule exists there.
func (e *Engine) EntryPoint(ctx context.Context, path string) (*EntryPoint, error) {
	e.mu.RLock()
	ep, ok := e.entries[path]
	e.mu.RUnlock()
	if ok {
		return ep, nil
	}
	ref, err := EntryPointRef(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownEntry, err)
	}
	if p := EntryPointPath(ref); p != path {
		return e.EntryPoint(ctx, p)
	}
	if len(e.compiler.GetRules(ref)) == 0 {
		return nil, fmt.Errorf("%w: no rules at %s in bundle %s", ErrUnknownEntry, path, shortRevision(e.revision))
	}
	return e.prepare(ctx, path, false, false)
}

func (e *Engine) prepare(ctx context.Context, path string, declared, served bool) (*EntryPoint, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ep, ok := e.entries[path]; ok {
		return ep, nil
	}
	ref, err := EntryPointRef(path)
	if err != nil {
		return nil, err
	}
	cfg := e.configs[path]
	pq, err := rego.New(
		rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(ref)))),
		rego.Compiler(e.compiler),
		rego.Store(e.store),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare entry point %s: %w", path, err)
	}
	ep := &EntryPoint{
		Path:         path,
		Config:       cfg,
		Declared:     declared,
		Served:       served,
		NotCacheable: cacheability(e.compiler, ref, cfg.CacheKey),
		ref:          ref,
		query:        pq,
		redaction:    NewRedaction(cfg.Sensitive),
	}
	if ep.Cacheable() {
		ep.keep, ep.projectable = projection(cfg.CacheKey)
	}
	e.entries[path] = ep
	return ep, nil
}

// Eval evaluates the entry point at path against in, without any cache.
func (e *Engine) Eval(ctx context.Context, path string, in Input) (Decision, error) {
	ep, err := e.EntryPoint(ctx, path)
	if err != nil {
		return Decision{}, err
	}
	return e.eval(ctx, ep, in)
}

func (e *Engine) eval(ctx context.Context, ep *EntryPoint, in Input) (Decision, error) {
	v, err := in.Value()
	if err != nil {
		return Decision{}, fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	opts := []rego.EvalOption{}
	if v != nil {
		opts = append(opts, rego.EvalParsedInput(v))
	}
	rs, err := ep.query.Eval(ctx, opts...)
	if err != nil {
		return Decision{}, fmt.Errorf("evaluate %s: %w", ep.Path, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, fmt.Errorf("%w at %s", ErrUndefined, ep.Path)
	}
	if len(rs) > 1 {
		return Decision{}, fmt.Errorf("evaluate %s: %d results, want one", ep.Path, len(rs))
	}
	d, err := ParseDecision(rs[0].Expressions[0].Value)
	if err != nil {
		return Decision{}, fmt.Errorf("evaluate %s: %w", ep.Path, err)
	}
	d.Entry = ep.Path
	d.Revision = e.revision
	d.DryRun = ep.Config.DryRun
	return d, nil
}

// Query evaluates the served entry point at path against in and returns
// its value as JSON-compatible Go values (json.Number for numbers), for
// entry points whose result is data rather than a decision: a list of
// rules, validation findings. It never caches.
func (e *Engine) Query(ctx context.Context, path string, in Input) (any, error) {
	ep, err := e.ServedEntryPoint(path)
	if err != nil {
		return nil, err
	}
	v, err := in.Value()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	opts := []rego.EvalOption{}
	if v != nil {
		opts = append(opts, rego.EvalParsedInput(v))
	}
	rs, err := ep.query.Eval(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", ep.Path, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, fmt.Errorf("%w at %s", ErrUndefined, ep.Path)
	}
	return rs[0].Expressions[0].Value, nil
}

// parseBundle reads b with OPA's bundle reader and returns its modules by
// path; a failure is a *CompileError.
func parseBundle(b *Bundle) (opabundle.Bundle, map[string]*ast.Module, error) {
	ob, err := readOPABundle(b)
	if err != nil {
		return ob, nil, &CompileError{Source: b.Source, Err: err}
	}
	modules := make(map[string]*ast.Module, len(ob.Modules))
	for _, m := range ob.Modules {
		modules[m.Path] = m.Parsed
	}
	return ob, modules, nil
}

// readOPABundle hands the bundle's files to OPA's bundle reader, which checks
// the manifest, its roots and the data documents, and parses the modules as
// Rego v1.
func readOPABundle(b *Bundle) (opabundle.Bundle, error) {
	paths := make([]string, 0, len(b.Files))
	for p := range b.Files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	loader := &memLoader{files: b.Files, paths: paths}
	return opabundle.NewCustomReader(loader).
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotations(true).
		WithSkipBundleVerification(true).
		Read()
}

// memLoader feeds in-memory files to OPA's bundle reader.
type memLoader struct {
	files map[string][]byte
	paths []string
	next  int
}

func (l *memLoader) NextFile() (*opabundle.Descriptor, error) {
	if l.next >= len(l.paths) {
		return nil, io.EOF
	}
	p := l.paths[l.next]
	l.next++
	return opabundle.NewDescriptor(p, p, bytes.NewReader(l.files[p])), nil
}

func (l *memLoader) WithFilter(filter.LoaderFilter) opabundle.DirectoryLoader { return l }
func (l *memLoader) WithPathFormat(opabundle.PathFormat) opabundle.DirectoryLoader {
	return l
}
func (l *memLoader) WithSizeLimitBytes(int64) opabundle.DirectoryLoader { return l }
func (l *memLoader) WithFollowSymlinks(bool) opabundle.DirectoryLoader  { return l }
