package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gavel-dev/gavel/policy"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// activateReport is the result of an activation run; names are stable.
type activateReport struct {
	Rounds   int                      `json:"rounds"`
	Replicas []activateReplica        `json:"replicas"`
	Upload   map[string]time.Duration `json:"-"`
}

type activateReplica struct {
	URL    string  `json:"url"`
	P50ms  float64 `json:"p50_ms"`
	P90ms  float64 `json:"p90_ms"`
	P99ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
	Missed int     `json:"missed"`
}

// cmdActivate measures activation-to-serving latency across replicas: each
// round uploads a new revision of a bundle to one replica (round robin),
// activates it there, and times until every replica's /readyz reports it.
func cmdActivate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("activate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var replicas stringList
	fs.Var(&replicas, "replica", "a replica's HTTP address (repeat for each; the first also takes the uploads)")
	token := fs.String("token", "", "API key with the policy-admin role")
	bundleDir := fs.String("bundle", "", "the bundle to vary (a directory or .tar.gz)")
	marker := fs.String("marker", "gavel/bench", "data path (under one of the bundle's roots) where each round writes its number")
	rounds := fs.Int("rounds", 20, "activations")
	timeout := fs.Duration("timeout", 10*time.Second, "how long a replica may take before it counts as missed")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(replicas) == 0 || *bundleDir == "" || *token == "" || *rounds < 1 {
		return usagef("--replica (one or more), --bundle, --token and --rounds >= 1 are required")
	}
	base, err := policy.LoadBundle(*bundleDir, policy.Limits{})
	if err != nil {
		return err
	}
	for i, r := range replicas {
		if !strings.Contains(r, "://") {
			replicas[i] = "http://" + r
		}
		replicas[i] = strings.TrimRight(replicas[i], "/")
	}
	hc := &http.Client{Timeout: time.Minute}
	raw := map[string][]time.Duration{}
	missed := map[string]int{}
	nonce := time.Now().UnixNano()
	for round := range *rounds {
		files := map[string][]byte{}
		for p, d := range base.Files {
			files[p] = d
		}
		files[path.Join("/", *marker, "data.json")] = fmt.Appendf(nil, `{"round": %d, "nonce": %d}`, round, nonce)
		b, err := policy.NewBundle(base.Source, files)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := b.WriteTarGz(&buf); err != nil {
			return err
		}
		up := replicas[round%len(replicas)]
		if _, err := call(ctx, hc, http.MethodPost, up+"/v1/bundles?source=gavel-bench", *token, buf.Bytes()); err != nil {
			return fmt.Errorf("round %d: upload: %w", round, err)
		}
		start := time.Now()
		if _, err := call(ctx, hc, http.MethodPost, up+"/v1/bundles/"+b.Revision+"/activate", *token, nil); err != nil {
			return fmt.Errorf("round %d: activate: %w", round, err)
		}
		pending := slices.Clone(replicas)
		for len(pending) > 0 {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Since(start) > *timeout {
				for _, r := range pending {
					missed[r]++
				}
				break
			}
			next := pending[:0]
			for _, r := range pending {
				if rev, _ := readyRevision(ctx, hc, r); rev == b.Revision {
					raw[r] = append(raw[r], time.Since(start))
				} else {
					next = append(next, r)
				}
			}
			pending = next
			if len(pending) > 0 {
				time.Sleep(2 * time.Millisecond)
			}
		}
	}
	rep := activateReport{Rounds: *rounds}
	for _, r := range replicas {
		d := raw[r]
		slices.Sort(d)
		q := func(p float64) float64 {
			if len(d) == 0 {
				return 0
			}
			return float64(d[int(p*float64(len(d)-1)+0.5)].Microseconds()) / 1000
		}
		rep.Replicas = append(rep.Replicas, activateReplica{URL: r, P50ms: q(0.5), P90ms: q(0.9), P99ms: q(0.99), MaxMs: q(1), Missed: missed[r]})
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "replica\trounds\tp50\tp90\tp99\tmax\tmissed\n")
		for _, r := range rep.Replicas {
			fmt.Fprintf(tw, "%s\t%d\t%.1f ms\t%.1f ms\t%.1f ms\t%.1f ms\t%d\n", r.URL, rep.Rounds, r.P50ms, r.P90ms, r.P99ms, r.MaxMs, r.Missed)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, r := range rep.Replicas {
		if r.Missed > 0 {
			return fmt.Errorf("%s missed %d of %d activations within %v", r.URL, r.Missed, *rounds, *timeout)
		}
	}
	return nil
}

func call(ctx context.Context, hc *http.Client, method, url, token string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return b, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(b))
	}
	return b, nil
}

func readyRevision(ctx context.Context, hc *http.Client, base string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var st struct {
		Revision string `json:"revision"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return "", errors.New("readyz is not JSON")
	}
	return st.Revision, nil
}
