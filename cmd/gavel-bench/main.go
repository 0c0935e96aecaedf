// Command gavel-bench generates load against an Envoy ext_authz v3 gRPC
// server (envoy.service.auth.v3.Authorization/Check) and reports
// throughput, latency percentiles and decisions. It is how gavel measures
// its ext_authz path against a physical limit: the "null" subcommand serves
// an always-allow Check on the same gRPC stack, so the difference between
// the two is what policy evaluation costs.
//
// Usage:
//
//	gavel-bench run  --addr 127.0.0.1:9191 --requests mix.jsonl [--concurrency 16] [--conns N]
//	                 [--duration 10s] [--warmup 0s] [--rate R] [--max-requests N] [--timeout 1s] [--json]
//	gavel-bench null [--addr 127.0.0.1:9292]
//	gavel-bench gen  --out mix.jsonl [--n 1000] [--distinct 200] [--seed 1]
//	gavel-bench auditload --postgres-url URL --requests mix.jsonl [--rate 2000] [--duration 0]
//	gavel-bench xds  [--xds 127.0.0.1:18000] [--api http://127.0.0.1:8181] [--service greeter]
//	                 [--clients 1000] [--rounds 5] [--timeout 30s] [--connect-batch 100] [--pid PID] [--json]
//
// run without --rate is a closed loop: every worker sends its next request
// as soon as the previous one is answered, which finds the maximum
// throughput. With --rate it is an open loop at a fixed rate: requests are
// scheduled at fixed intervals on one schedule shared by all workers, and a
// request that has to wait for a free worker is measured from its
// scheduled time, so coordinated omission does not hide queueing.
//
// The request mix is a JSONL file with one CheckRequest per line in
// protojson; blank lines and lines starting with '#' are ignored. gen writes
// a representative mix; testdata/mix.jsonl is one (n=1000, seed 1).
//
// xds measures gavel's control plane (gavel controlplane) with many
// proxyless gRPC clients: each is a gRPC-Go channel to xds:///SERVICE with
// its own xDS client. It registers a new endpoint through the port
// discovery API, round after round, and reports how long until every
// client has connected to it, and the control plane's memory from its
// /metrics. See xds.go.
//
// gavel-bench speaks plaintext gRPC and only to loopback addresses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: gavel-bench <command> [flags]

commands:
  run   drive load against an ext_authz gRPC server and report
  null  serve an always-allow ext_authz server (the physical limit)
  gen   write a representative request mix as JSONL
  hooks drive load against the Claude Code hooks endpoint and report
  gen-hooks  write a representative mix of hook payloads as JSONL
  activate  time how long an activation takes to reach every replica
  spin  keep a core busy in bursts, as a co-located neighbour does (for
        measuring how much a neighbour moves a server's tail latency)
  auditload  write the audit trail of a fixed Check rate to PostgreSQL,
        as a replica does, without serving Checks (for measuring the
        database's share of the audit trail's cost)
  xds   connect many proxyless gRPC xDS clients to gavel's control plane and
        measure how fast a new endpoint reaches all of them

xds needs two file descriptors per client and endpoint (about 14,000 for
1,000 clients and 5 rounds) and one per client in the control plane. It
raises its own limit to the hard limit; start the control plane from a
shell with a high enough limit too, e.g.

  ulimit -n 20000
  gavel controlplane --services cmd/gavel-bench/testdata/xds-services.yaml \
      --xds-addr 127.0.0.1:18000 --http-addr 127.0.0.1:8181 &
  gavel-bench xds --clients 1000 --pid $!

Run 'gavel-bench <command> -h' for the flags of a command.
`

// realMain runs the command line args and returns the exit code:
// 0 on success, 1 on failure, 2 on bad usage.
func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var cmd func(context.Context, []string, io.Writer, io.Writer) error
	switch args[0] {
	case "run":
		cmd = cmdRun
	case "null":
		cmd = cmdNull
	case "gen":
		cmd = cmdGen
	case "xds":
		cmd = cmdXDS
	case "hooks":
		cmd = cmdHooks
	case "gen-hooks":
		cmd = cmdGenHooks
	case "activate":
		cmd = cmdActivate
	case "spin":
		cmd = cmdSpin
	case "auditload":
		cmd = cmdAuditLoad
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "gavel-bench: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	err := cmd(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		if err.Error() != "" {
			fmt.Fprintf(stderr, "gavel-bench %s: %v\n", args[0], err)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "gavel-bench %s: %v\n", args[0], err)
		return 1
	}
}

// usageError marks errors in the command line itself.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// parse parses a subcommand's flags and rejects stray arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{} // the flag package has printed the details
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %q", fs.Args())
	}
	return nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9191", "ext_authz gRPC server `address` (loopback only)")
	requests := fs.String("requests", "", "JSONL `file` of CheckRequests (required)")
	concurrency := fs.Int("concurrency", 16, "number of concurrent workers")
	conns := fs.Int("conns", 0, "gRPC connections shared by the workers (default: one per 16 workers)")
	duration := fs.Duration("duration", 10*time.Second, "measured duration of the run, after the warmup")
	warmup := fs.Duration("warmup", 0, "load before the measured period, excluded from the statistics")
	rate := fs.Float64("rate", 0, "fixed request rate in requests/second (default: closed loop, as fast as possible)")
	maxRequests := fs.Uint64("max-requests", 0, "stop after this many measured requests (default: no limit)")
	timeout := fs.Duration("timeout", time.Second, "per-request deadline, from the scheduled send time at a fixed rate (0: none)")
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *requests == "" {
		return usagef("--requests is required")
	}
	mix, err := loadMix(*requests)
	if err != nil {
		return err
	}
	rep, err := runLoad(ctx, runConfig{
		Addr:        *addr,
		Mix:         mix,
		Concurrency: *concurrency,
		Conns:       *conns,
		Duration:    *duration,
		Warmup:      *warmup,
		Rate:        *rate,
		MaxRequests: *maxRequests,
		Timeout:     *timeout,
	})
	if err != nil {
		return err
	}
	if rep.Interrupted {
		fmt.Fprintln(stderr, "gavel-bench run: interrupted, partial results")
	}
	if *asJSON {
		return rep.writeJSON(stdout)
	}
	return rep.writeTable(stdout)
}

func cmdNull(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("null", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9292", "listen `address` (loopback only; port 0 picks a free port)")
	if err := parse(fs, args); err != nil {
		return err
	}
	return serveNull(ctx, *addr, stdout)
}

func cmdGen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "output `file` ('-' for stdout; required)")
	n := fs.Int("n", 1000, "number of requests to write")
	distinct := fs.Int("distinct", 200, "number of distinct requests among them")
	seed := fs.Uint64("seed", 1, "random seed; the same seed gives the same file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	cfg := genConfig{N: *n, Distinct: *distinct, Seed: *seed}
	if *out == "-" {
		return generateMix(stdout, cfg)
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := generateMix(f, cfg); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
