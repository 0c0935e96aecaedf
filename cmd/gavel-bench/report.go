package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// report is the result of a run. The JSON field names are stable: scripts
// build documentation tables from them.
type report struct {
	Requests     uint64            `json:"requests"` // measured requests, including errors
	Seconds      float64           `json:"seconds"`  // measured period, until the last response
	RPS          float64           `json:"rps"`
	P50us        int64             `json:"p50_us"`
	P90us        int64             `json:"p90_us"`
	P99us        int64             `json:"p99_us"`
	P999us       int64             `json:"p999_us"`
	MaxUs        int64             `json:"max_us"`
	Errors       uint64            `json:"errors"`
	Allowed      uint64            `json:"allowed"` // CheckResponse.status.code == 0
	Denied       uint64            `json:"denied"`  // CheckResponse.status.code != 0
	ErrorsByCode map[string]uint64 `json:"errors_by_code"`

	// Context of the run.
	Addr             string  `json:"addr"`
	Mode             string  `json:"mode"` // "closed" or "rate"
	TargetRPS        float64 `json:"target_rps,omitempty"`
	Concurrency      int     `json:"concurrency"`
	Conns            int     `json:"conns"`
	ExactPercentiles bool    `json:"exact_percentiles"` // false: from the histogram, error < 1%
	Queued           uint64  `json:"queued"`            // fixed rate: requests that waited for a free worker
	ClientCPUUser    float64 `json:"client_cpu_user_s,omitempty"`
	ClientCPUSys     float64 `json:"client_cpu_sys_s,omitempty"`
	Interrupted      bool    `json:"interrupted,omitempty"`
}

func newReport(cfg runConfig, workers []*worker, elapsed time.Duration) *report {
	r := &report{
		ErrorsByCode: map[string]uint64{},
		Addr:         cfg.Addr,
		Mode:         "closed",
		TargetRPS:    cfg.Rate,
		Concurrency:  cfg.Concurrency,
		Conns:        cfg.Conns,
	}
	if cfg.Rate > 0 {
		r.Mode = "rate"
	}
	recs := make([]*recorder, len(workers))
	for i, w := range workers {
		recs[i] = w.rec
		r.Allowed += w.allowed
		r.Denied += w.denied
		r.Queued += w.queued
		for code, n := range w.errs {
			r.ErrorsByCode[code.String()] += n
			r.Errors += n
		}
	}
	r.Requests = r.Allowed + r.Denied + r.Errors
	if elapsed > 0 {
		r.Seconds = round(elapsed.Seconds(), 3)
		r.RPS = round(float64(r.Requests)/elapsed.Seconds(), 1)
	}
	lat := summarize(recs)
	r.P50us = micros(lat.P50)
	r.P90us = micros(lat.P90)
	r.P99us = micros(lat.P99)
	r.P999us = micros(lat.P999)
	r.MaxUs = micros(lat.Max)
	r.ExactPercentiles = lat.Exact
	return r
}

// micros rounds d to whole microseconds.
func micros(d time.Duration) int64 {
	return int64((d + time.Microsecond/2) / time.Microsecond)
}

func round(x float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(x*p) / p
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	return enc.Encode(r)
}

// writeTable prints the report for humans.
func (r *report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	mode := "closed loop"
	if r.Mode == "rate" {
		mode = fmt.Sprintf("fixed rate %g rps", r.TargetRPS)
	}
	fmt.Fprintf(tw, "target\t%s (%s, %s, %s)\n", r.Addr, mode, plural(r.Concurrency, "worker"), plural(r.Conns, "connection"))
	fmt.Fprintf(tw, "requests\t%d\n", r.Requests)
	fmt.Fprintf(tw, "duration\t%.3fs\n", r.Seconds)
	fmt.Fprintf(tw, "rps\t%.1f\n", r.RPS)
	approx := ""
	if !r.ExactPercentiles {
		approx = "  (histogram, <1% error)"
	}
	fmt.Fprintf(tw, "latency\tp50 %s  p90 %s  p99 %s  p99.9 %s  max %s%s\n",
		fmtMicros(r.P50us), fmtMicros(r.P90us), fmtMicros(r.P99us), fmtMicros(r.P999us), fmtMicros(r.MaxUs), approx)
	fmt.Fprintf(tw, "allowed\t%d\n", r.Allowed)
	fmt.Fprintf(tw, "denied\t%d\n", r.Denied)
	errs := fmt.Sprint(r.Errors)
	if len(r.ErrorsByCode) > 0 {
		codes := make([]string, 0, len(r.ErrorsByCode))
		for c := range r.ErrorsByCode {
			codes = append(codes, c)
		}
		sort.Strings(codes)
		parts := make([]string, len(codes))
		for i, c := range codes {
			parts[i] = fmt.Sprintf("%s=%d", c, r.ErrorsByCode[c])
		}
		errs += " (" + strings.Join(parts, " ") + ")"
	}
	fmt.Fprintf(tw, "errors\t%s\n", errs)
	if r.Mode == "rate" {
		fmt.Fprintf(tw, "queued\t%d (sent late because all workers were busy)\n", r.Queued)
	}
	if r.ClientCPUUser > 0 || r.ClientCPUSys > 0 {
		perReq := ""
		if r.Requests > 0 {
			perReq = fmt.Sprintf(" = %.1fµs/request", (r.ClientCPUUser+r.ClientCPUSys)*1e6/float64(r.Requests))
		}
		fmt.Fprintf(tw, "client cpu\tuser %.2fs  sys %.2fs%s\n", r.ClientCPUUser, r.ClientCPUSys, perReq)
	}
	if r.Interrupted {
		fmt.Fprintf(tw, "note\tinterrupted: partial results\n")
	}
	return tw.Flush()
}

func fmtMicros(us int64) string {
	if us >= 10_000 {
		return fmt.Sprintf("%.1fms", float64(us)/1000)
	}
	return fmt.Sprintf("%dµs", us)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
