package breaker

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// RetryOptions bound [Breaker.Do]'s retries. Zero values mean defaults.
type RetryOptions struct {
	// MaxAttempts is the most calls, the first included (default 3).
	MaxAttempts uint
	// MaxElapsed bounds the time spent from the first call to the start of
	// the last (default 1 s).
	MaxElapsed time.Duration
	// Initial is the first wait (default 10 ms); each next one is 2x the
	// previous, up to Max (default 500 ms), each randomised by ±50 %.
	Initial, Max time.Duration
	// Transient says which errors are worth another try (default
	// [IsTransient]).
	Transient func(error) bool
}

func (o RetryOptions) withDefaults() RetryOptions {
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 3
	}
	if o.MaxElapsed <= 0 {
		o.MaxElapsed = time.Second
	}
	if o.Initial <= 0 {
		o.Initial = 10 * time.Millisecond
	}
	if o.Max <= 0 {
		o.Max = 500 * time.Millisecond
	}
	if o.Transient == nil {
		o.Transient = IsTransient
	}
	return o
}

// IsTransient is the default retry classifier: network errors (a refused
// or reset connection, a timeout of the call itself) are transient; the
// caller's cancellation, an open breaker and everything else are not.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, ErrOpen) || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// Do calls fn through the breaker and retries it, with exponential backoff
// and jitter, while it fails with an error the classifier calls transient,
// within the attempt and time bounds. It never retries once the breaker is
// open (ErrOpen is returned as is) nor after ctx ends. Each attempt counts
// toward the breaker.
func (b *Breaker) Do(ctx context.Context, fn func(context.Context) error) error {
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     b.retry.Initial,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         b.retry.Max,
	}
	attempt := uint(0)
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempt++
		if attempt > 1 {
			b.m.retries.WithLabelValues(b.name).Inc()
		}
		err := b.Execute(ctx, fn)
		if err == nil {
			return struct{}{}, nil
		}
		if !b.retry.Transient(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(bo), backoff.WithMaxTries(b.retry.MaxAttempts), backoff.WithMaxElapsedTime(b.retry.MaxElapsed))
	var perm *backoff.PermanentError
	if errors.As(err, &perm) {
		return perm.Unwrap()
	}
	return err
}
