package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestNearestRank(t *testing.T) {
	tests := []struct {
		p    float64
		n    uint64
		want uint64
	}{
		{50, 0, 0},
		{50, 1, 1},
		{99.9, 1, 1},
		{50, 2, 1},
		{51, 2, 2},
		{50, 100, 50},
		{90, 100, 90},
		{99, 100, 99},
		{99.9, 100, 100},
		{99.9, 1000, 999},
		{99.9, 10000, 9990},
		{99, 1000, 990},
		{100, 7, 7},
		{0, 7, 1},
		{0.001, 7, 1},
	}
	for _, tt := range tests {
		if got := nearestRank(tt.p, tt.n); got != tt.want {
			t.Errorf("nearestRank(%v, %d) = %d, want %d", tt.p, tt.n, got, tt.want)
		}
	}
}

func TestPercentileSorted(t *testing.T) {
	oneTo := func(n uint64) []uint64 {
		s := make([]uint64, n)
		for i := range s {
			s[i] = uint64(i) + 1
		}
		return s
	}
	tests := []struct {
		name   string
		sorted []uint64
		p      float64
		want   uint64
	}{
		{"empty", nil, 50, 0},
		{"single p50", []uint64{42}, 50, 42},
		{"single p99.9", []uint64{42}, 99.9, 42},
		{"two p50", []uint64{10, 20}, 50, 10},
		{"two p90", []uint64{10, 20}, 90, 20},
		{"1..100 p50", oneTo(100), 50, 50},
		{"1..100 p90", oneTo(100), 90, 90},
		{"1..100 p99", oneTo(100), 99, 99},
		{"1..100 p99.9", oneTo(100), 99.9, 100},
		{"1..1000 p99.9", oneTo(1000), 99.9, 999},
		{"1..1000 p100", oneTo(1000), 100, 1000},
		{"outlier", []uint64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1000}, 90, 1},
		{"outlier max", []uint64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1000}, 99, 1000},
	}
	for _, tt := range tests {
		if got := percentileSorted(tt.sorted, tt.p); got != tt.want {
			t.Errorf("%s: percentileSorted(p%v) = %d, want %d", tt.name, tt.p, got, tt.want)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Every bucket is contiguous with the next and no wider than 1% of
	// its lower bound (beyond the exact range).
	prevHi := ^uint64(0) // so that prevHi+1 == 0
	for i := range histBuckets {
		lo, hi := histBounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if hi < lo {
			t.Fatalf("bucket %d: hi %d < lo %d", i, hi, lo)
		}
		if float64(hi-lo) > 0.01*float64(lo) {
			t.Fatalf("bucket %d [%d, %d] wider than 1%%", i, lo, hi)
		}
		if histIndex(lo) != i || histIndex(hi) != i {
			t.Fatalf("bucket %d [%d, %d]: histIndex(lo)=%d histIndex(hi)=%d", i, lo, hi, histIndex(lo), histIndex(hi))
		}
		prevHi = hi
	}
	if prevHi != ^uint64(0) {
		t.Fatalf("buckets end at %d, want max uint64", prevHi)
	}
}

func TestHistogramPercentileError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h histogram
	vals := make([]uint64, 100_000)
	for i := range vals {
		// Log-uniform from 1µs to 1s, like latencies.
		v := uint64(1000 * math.Pow(10, r.Float64()*6))
		vals[i] = v
		h.record(v)
	}
	slices.Sort(vals)
	for _, p := range []float64{1, 50, 90, 99, 99.9, 99.99, 100} {
		exact := percentileSorted(vals, p)
		got := h.percentile(p)
		if rel := relErr(got, exact); rel > 0.01 {
			t.Errorf("p%v: histogram %d, exact %d, error %.3f%% > 1%%", p, got, exact, rel*100)
		}
	}
	if h.percentile(100) != vals[len(vals)-1] {
		t.Errorf("p100 = %d, want exact max %d", h.percentile(100), vals[len(vals)-1])
	}
}

func TestHistogramSmallValuesExact(t *testing.T) {
	var h histogram
	for v := range uint64(histLinear) {
		h.record(v)
	}
	for _, tt := range []struct {
		p    float64
		want uint64
	}{{50, 127}, {90, 230}, {100, 255}} {
		if got := h.percentile(tt.p); got != tt.want {
			t.Errorf("p%v = %d, want %d", tt.p, got, tt.want)
		}
	}
	var empty histogram
	if got := empty.percentile(50); got != 0 {
		t.Errorf("empty histogram p50 = %d, want 0", got)
	}
}

func TestSummarize(t *testing.T) {
	durations := func(r *recorder, ds ...time.Duration) {
		for _, d := range ds {
			r.record(d)
		}
	}
	ms := time.Millisecond

	t.Run("exact", func(t *testing.T) {
		a, b := newRecorder(10), newRecorder(10)
		durations(a, 1*ms, 2*ms, 3*ms, 4*ms, 5*ms)
		durations(b, 6*ms, 7*ms, 8*ms, 9*ms, 10*ms)
		s := summarize([]*recorder{a, b})
		want := latencySummary{Count: 10, P50: 5 * ms, P90: 9 * ms, P99: 10 * ms, P999: 10 * ms, Max: 10 * ms, Exact: true}
		if s != want {
			t.Errorf("summarize = %+v, want %+v", s, want)
		}
	})

	t.Run("histogram when samples overflow", func(t *testing.T) {
		a, b := newRecorder(2), newRecorder(1000)
		var all []uint64
		for i := 1; i <= 1000; i++ {
			d := time.Duration(i) * time.Microsecond
			all = append(all, uint64(d))
			if i%2 == 0 {
				a.record(d)
			} else {
				b.record(d)
			}
		}
		s := summarize([]*recorder{a, b})
		if s.Exact {
			t.Fatal("Exact = true after overflowing the sample cap")
		}
		if s.Count != 1000 {
			t.Errorf("Count = %d, want 1000", s.Count)
		}
		for _, c := range []struct {
			name string
			got  time.Duration
			p    float64
		}{{"p50", s.P50, 50}, {"p90", s.P90, 90}, {"p99", s.P99, 99}, {"p99.9", s.P999, 99.9}} {
			if rel := relErr(uint64(c.got), percentileSorted(all, c.p)); rel > 0.01 {
				t.Errorf("%s = %v, error %.3f%% > 1%%", c.name, c.got, rel*100)
			}
		}
		if s.Max != time.Millisecond {
			t.Errorf("Max = %v, want 1ms", s.Max)
		}
	})

	t.Run("empty", func(t *testing.T) {
		s := summarize([]*recorder{newRecorder(4)})
		if s != (latencySummary{Exact: true}) {
			t.Errorf("summarize(empty) = %+v", s)
		}
	})

	t.Run("negative durations clamp to zero", func(t *testing.T) {
		r := newRecorder(4)
		r.record(-time.Second)
		if s := summarize([]*recorder{r}); s.Max != 0 || s.Count != 1 {
			t.Errorf("summarize = %+v", s)
		}
	})
}

func TestRecorderMemoryBounded(t *testing.T) {
	r := newRecorder(8)
	for i := range 10_000 {
		r.record(time.Duration(i))
	}
	if len(r.samples) != 8 || cap(r.samples) != 8 {
		t.Errorf("samples len %d cap %d, want 8/8", len(r.samples), cap(r.samples))
	}
	if r.hist.n != 10_000 {
		t.Errorf("histogram count %d, want 10000", r.hist.n)
	}
}

func relErr(got, want uint64) float64 {
	if want == 0 {
		return float64(got)
	}
	d := float64(got) - float64(want)
	if d < 0 {
		d = -d
	}
	return d / float64(want)
}
