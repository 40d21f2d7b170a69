package fetch

import (
	"context"
	"time"
)

// clock is time for the limiter and the backoff, so tests can run them on
// a clock of their own.
type clock interface {
	now() time.Time
	// sleep waits d or until ctx is done (then it returns ctx's error).
	sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) now() time.Time { return time.Now() }

func (realClock) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// limiter is a token bucket of bytes: it fills at rate per second up to
// burst, an eighth of a second's worth, and each read's bytes are taken
// from it after the read, the reader sleeping off any debt before it
// returns them. Reads are cut to chunk (= burst) bytes, so whatever the
// buffer sizes the flow is smooth, never a second's worth at once then a
// pause, and delivering N bytes takes at least (N-burst)/rate.
type limiter struct {
	rate   float64 // bytes per second
	burst  float64
	chunk  int
	tokens float64
	last   time.Time
	clock  clock
}

func newLimiter(rate int64, c clock) *limiter {
	burst := max(rate/8, 1)
	return &limiter{rate: float64(rate), burst: float64(burst), chunk: int(min(burst, 1<<30)), tokens: float64(burst), last: c.now(), clock: c}
}

// wait takes n bytes from the bucket and sleeps until it is no longer in
// debt.
func (l *limiter) wait(ctx context.Context, n int64) error {
	now := l.clock.now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	l.tokens -= float64(n)
	if l.tokens >= 0 {
		return nil
	}
	return l.clock.sleep(ctx, time.Duration(-l.tokens/l.rate*float64(time.Second)))
}
