package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"
)

// spin is a neighbour for latency measurements: it keeps one core busy for
// burst out of every period, until ctx ends, and returns how many bursts it
// ran. Run next to a server under a fixed-rate load, it shows how much a
// co-located process's work (a database, a log shipper) moves the server's
// tail latency on this machine, at normal priority or, under
// `chrt --idle 0`, in the idle class.
func spin(ctx context.Context, burst, period time.Duration) int {
	t := time.NewTicker(period)
	defer t.Stop()
	bursts := 0
	for {
		select {
		case <-ctx.Done():
			return bursts
		case <-t.C:
		}
		end := time.Now().Add(burst)
		for time.Now().Before(end) {
			busyWork()
		}
		bursts++
	}
}

var sink uint64

// busyWork is a few microseconds of arithmetic the compiler cannot drop.
func busyWork() {
	x := sink
	for i := range uint64(1000) {
		x = x*6364136223846793005 + i
	}
	sink = x
}

func cmdSpin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("spin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	burst := fs.Duration("burst", 5*time.Millisecond, "how long each burst keeps a core busy")
	period := fs.Duration("every", 100*time.Millisecond, "how often a burst starts")
	duration := fs.Duration("duration", 0, "stop after this long (0: when interrupted)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *burst <= 0 || *period <= 0 || *burst >= *period {
		return usagef("--burst must be positive and shorter than --every (got %v every %v)", *burst, *period)
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	n := spin(ctx, *burst, *period)
	_, err := fmt.Fprintf(stdout, "%d bursts of %v every %v\n", n, *burst, *period)
	return err
}
