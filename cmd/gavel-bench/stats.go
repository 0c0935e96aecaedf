package main

import (
	"math"
	"math/bits"
	"slices"
	"time"
)

// Latency histogram layout. Values (nanoseconds) below histLinear get one
// bucket each; above that every power of two is split into histSubCount
// buckets, so a bucket is never wider than 1/histSubCount of its lower bound.
// Reporting the bucket midpoint keeps the relative error under
// 1/(2*histSubCount) ≈ 0.4%, well inside the 1% budget.
const (
	histSubBits  = 7
	histSubCount = 1 << histSubBits // 128
	histLinear   = 2 * histSubCount // 256 exact buckets for 0..255
	// The largest shift is reached for a full 64-bit value:
	// bits.Len64 = 64, shift = 64 - (histSubBits + 1) = 56.
	histMaxShift = 64 - (histSubBits + 1)
	histBuckets  = histLinear + histMaxShift*histSubCount
)

// histogram is a fixed-size log-linear latency histogram (HDR-like). It
// needs no allocation while recording and merges by adding counts.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	min    uint64
	max    uint64
}

// histIndex maps a value to its bucket.
func histIndex(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	shift := bits.Len64(v) - (histSubBits + 1) // >= 1
	top := v >> shift                          // in [histSubCount, 2*histSubCount)
	return histLinear + (shift-1)*histSubCount + int(top-histSubCount)
}

// histBounds returns the smallest and largest value mapped to bucket i.
func histBounds(i int) (lo, hi uint64) {
	if i < histLinear {
		return uint64(i), uint64(i)
	}
	k := i - histLinear
	shift := k/histSubCount + 1
	top := uint64(k%histSubCount + histSubCount)
	lo = top << shift
	return lo, lo + (1 << shift) - 1
}

func (h *histogram) record(v uint64) {
	h.counts[histIndex(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
}

// percentile returns the value at percentile p (0 < p <= 100) using the
// nearest-rank definition, to within the bucket resolution. The result is
// clamped to the exact recorded minimum and maximum, so p100 is exact.
func (h *histogram) percentile(p float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := nearestRank(p, h.n)
	if rank == h.n {
		return h.max
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			lo, hi := histBounds(i)
			v := lo + (hi-lo)/2
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

// nearestRank returns the 1-based rank of percentile p among n sorted
// values: the smallest rank r with r/n >= p/100, clamped to [1, n].
func nearestRank(p float64, n uint64) uint64 {
	if n == 0 {
		return 0
	}
	// The epsilon absorbs binary rounding, e.g. 99.9/100*1000 must be 999.
	r := math.Ceil(p/100*float64(n) - 1e-9)
	switch {
	case r < 1:
		return 1
	case r >= float64(n):
		return n
	}
	return uint64(r)
}

// percentileSorted returns the nearest-rank percentile p of sorted values.
func percentileSorted(sorted []uint64, p float64) uint64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[nearestRank(p, uint64(len(sorted)))-1]
}

// recorder collects the latencies of one worker. Every value goes into the
// histogram; the first cap(samples) values are also kept verbatim so short
// runs get exact percentiles. Memory is fixed at construction time.
type recorder struct {
	samples []uint64
	hist    histogram
}

func newRecorder(maxSamples int) *recorder {
	return &recorder{samples: make([]uint64, 0, max(maxSamples, 0))}
}

func (r *recorder) record(d time.Duration) {
	v := uint64(max(d, 0))
	if len(r.samples) < cap(r.samples) {
		r.samples = append(r.samples, v)
	}
	r.hist.record(v)
}

// latencySummary holds the reported latency percentiles.
type latencySummary struct {
	Count                    uint64
	P50, P90, P99, P999, Max time.Duration
	// Exact is true when every sample was kept, so the percentiles are
	// exact; otherwise they come from the histogram (error < 1%).
	Exact bool
}

// summarize merges the recorders and computes the reported percentiles.
func summarize(recs []*recorder) latencySummary {
	var total histogram
	exact := true
	nSamples := 0
	for _, r := range recs {
		total.merge(&r.hist)
		nSamples += len(r.samples)
		if uint64(len(r.samples)) != r.hist.n {
			exact = false
		}
	}
	s := latencySummary{Count: total.n, Exact: exact}
	if total.n == 0 {
		return s
	}
	pct := total.percentile
	if exact {
		all := make([]uint64, 0, nSamples)
		for _, r := range recs {
			all = append(all, r.samples...)
		}
		slices.Sort(all)
		pct = func(p float64) uint64 { return percentileSorted(all, p) }
	}
	s.P50 = time.Duration(pct(50))
	s.P90 = time.Duration(pct(90))
	s.P99 = time.Duration(pct(99))
	s.P999 = time.Duration(pct(99.9))
	s.Max = time.Duration(total.max)
	return s
}
