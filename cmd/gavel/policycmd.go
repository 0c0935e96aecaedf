package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/util"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gavel-dev/gavel/extauthz"
	"github.com/gavel-dev/gavel/policy"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Test, evaluate and build policy bundles; push, list, activate, roll back and diff them on a running gavel",
	}
	cmd.AddCommand(newPolicyTestCmd(), newPolicyEvalCmd(), newPolicyBuildCmd(),
		newPolicyPushCmd(), newPolicyListCmd(), newPolicyActivateCmd(), newPolicyRollbackCmd(), newPolicyDiffCmd())
	return cmd
}

func newPolicyTestCmd() *cobra.Command {
	var format string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test BUNDLE",
		Short: "Run a bundle's Rego tests (rules named test_*), as opa test does",
		Long: `Run the Rego tests of a bundle (a directory or a .tar.gz): every rule whose
name starts with test_. Exits 0 when all pass, 1 when any fails, 2 when the
bundle does not compile.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := policy.LoadBundle(args[0], policy.Limits{})
			if err != nil {
				return err
			}
			results, err := policy.RunTests(cmd.Context(), b)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError{2}
			}
			out := cmd.OutOrStdout()
			failed := 0
			for _, r := range results {
				if !r.Passed && !r.Skipped {
					failed++
				}
			}
			switch format {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(results); err != nil {
					return err
				}
			case "pretty":
				for _, r := range results {
					if verbose || (!r.Passed && !r.Skipped) {
						fmt.Fprintln(out, r)
						if r.Output != "" && (verbose || !r.Passed) {
							fmt.Fprintf(out, "  output: %s\n", r.Output)
						}
					}
				}
				fmt.Fprintf(out, "%d passed, %d failed\n", len(results)-failed, failed)
			default:
				return fmt.Errorf("--format %q: want pretty or json", format)
			}
			if len(results) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no tests found (rules named test_*)")
			}
			if failed > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "pretty", "output: pretty or json")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list passing tests too")
	return cmd
}

func newPolicyEvalCmd() *cobra.Command {
	var bundlePath, inputPath, entry, inputFormat string
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate one input and print the decision, its reason and the eval time",
		Long: `Evaluate an entry point of a bundle against one input and print the decision
as JSON, with the reason, the rules that decided and the evaluation time.

--input-format input takes the input document itself; check-request takes an
Envoy CheckRequest (protojson) and builds the OPA-Envoy input from it exactly
as the ext_authz server does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := loadBundle(bundlePath)
			if err != nil {
				return err
			}
			raw, err := readInput(cmd, inputPath)
			if err != nil {
				return err
			}
			var in policy.Input
			switch inputFormat {
			case "input":
				var doc any
				if err := util.UnmarshalJSON(raw, &doc); err != nil {
					return fmt.Errorf("--input %s: not JSON: %w", inputPath, err)
				}
				if in, err = policy.NewInput(doc); err != nil {
					return err
				}
			case "check-request":
				var req authv3.CheckRequest
				if err := protojson.Unmarshal(raw, &req); err != nil {
					return fmt.Errorf("--input %s: not a CheckRequest: %w", inputPath, err)
				}
				if in, err = extauthz.BuildInput(&req, extauthz.InputOptions{}); err != nil {
					return err
				}
				if e := req.GetAttributes().GetContextExtensions()[extauthz.PolicyExtension]; e != "" && !cmd.Flags().Changed("entry") {
					entry = e
				}
			default:
				return fmt.Errorf("--input-format %q: want input or check-request", inputFormat)
			}
			compileStart := time.Now()
			e, err := policy.Compile(cmd.Context(), b, policy.CompileOptions{EntryPoints: []string{entry}})
			if err != nil {
				return err
			}
			compileTime := time.Since(compileStart)
			ep, err := e.EntryPoint(cmd.Context(), entry)
			if err != nil {
				return err
			}
			start := time.Now()
			d, evalErr := e.Eval(cmd.Context(), entry, in)
			elapsed := time.Since(start)
			report := evalReport{
				Entry:       entry,
				Revision:    e.Revision(),
				EvalTime:    elapsed.String(),
				CompileTime: compileTime.Round(time.Microsecond).String(),
				Cacheable:   ep.Cacheable(),
				NotCached:   ep.NotCacheable,
			}
			if evalErr != nil {
				report.Error = evalErr.Error()
				report.ReasonCode = policy.ReasonCode(evalErr)
			} else {
				report.Decision = &d
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(report); err != nil {
				return err
			}
			if evalErr != nil {
				return exitError{1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&bundlePath, "bundle", "", "bundle directory or .tar.gz (default: the built-in bundle)")
	f.StringVar(&inputPath, "input", "-", "input JSON file, - for standard input")
	f.StringVar(&inputFormat, "input-format", "input", "input: the input document; check-request: an Envoy CheckRequest in protojson")
	f.StringVar(&entry, "entry", extauthz.DefaultEntry, "entry point path")
	return cmd
}

type evalReport struct {
	Entry       string           `json:"entry"`
	Revision    string           `json:"revision"`
	Decision    *policy.Decision `json:"decision,omitempty"`
	Error       string           `json:"error,omitempty"`
	ReasonCode  string           `json:"reason_code,omitempty"`
	EvalTime    string           `json:"eval_time"`
	CompileTime string           `json:"compile_time"`
	Cacheable   bool             `json:"cacheable"`
	NotCached   []string         `json:"not_cacheable_because,omitempty"`
}

func readInput(cmd *cobra.Command, path string) ([]byte, error) {
	const limit = 16 << 20
	var r io.Reader
	if path == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--input: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("--input: %w", err)
	}
	if len(b) > limit {
		return nil, errors.New("--input: larger than 16 MiB")
	}
	return b, nil
}

func newPolicyBuildCmd() *cobra.Command {
	var out string
	var skipTests bool
	cmd := &cobra.Command{
		Use:   "build BUNDLE",
		Short: "Compile a bundle, run its tests, and write it as an OPA bundle tarball",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := policy.LoadBundle(args[0], policy.Limits{})
			if err != nil {
				return err
			}
			e, err := policy.Compile(cmd.Context(), b, policy.CompileOptions{})
			if err != nil {
				return err
			}
			if !skipTests {
				results, err := policy.RunTests(cmd.Context(), b)
				if err != nil {
					return err
				}
				for _, r := range results {
					if !r.Passed && !r.Skipped {
						fmt.Fprintln(cmd.ErrOrStderr(), r)
						err = errors.New("bundle tests failed; not written")
					}
				}
				if err != nil {
					return err
				}
			}
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			if err := b.WriteTarGz(f); err != nil {
				f.Close()
				os.Remove(out)
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			for _, ep := range e.EntryPoints() {
				state := "cached"
				if !ep.Cacheable() {
					state = fmt.Sprintf("not cached: %v", ep.NotCacheable)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "entry point %s: %s\n", ep.Path, state)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\nrevision %s\n", out, b.Revision)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "bundle.tar.gz", "tarball to write")
	cmd.Flags().BoolVar(&skipTests, "skip-tests", false, "do not run the bundle's Rego tests")
	return cmd
}
