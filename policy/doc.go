// Package policy is gavel's decision engine: it loads and verifies OPA policy
// bundles, compiles each entry point once, evaluates many, and caches decisions
// behind a key that is proven to cover everything a decision depends on.
//
// The central types are [Input], the document a policy sees as `input`, and
// [Decision], what a policy answered. A [Bundle] is read from a directory or an
// OPA bundle tarball; [Compile] turns it into an immutable [Engine]; a [Service]
// publishes the active engine atomically and fronts it with the decision
// [Cache]. A bundle that fails to load or compile is rejected with the
// compiler's message and the previous engine keeps serving.
package policy
