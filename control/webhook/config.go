package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Dispatcher. Zero values take the defaults of
// DefaultConfig; Endpoints and DeadLetters are required.
type Config struct {
	Endpoints   Endpoints   // required: the configured receivers
	DeadLetters DeadLetters // required: where undeliverable events go

	// Client sends the requests; nil: a client of its own with a clone of
	// http.DefaultTransport. The Dispatcher uses a copy that never follows
	// redirects (a 3xx is a permanent failure): a signed event must not be
	// carried to a host nobody configured.
	Client     *http.Client
	Registerer prometheus.Registerer // nil: metrics unregistered
	Logger     *slog.Logger          // nil: slog.Default()

	Clock func() time.Time                                 // nil: time.Now
	Sleep func(ctx context.Context, d time.Duration) error // backoff waits; nil: a timer. Must return early with an error when ctx ends.
	Rand  func() float64                                   // jitter in [0, 1); nil: math/rand/v2

	// AllowHTTP accepts http:// URLs to loopback hosts, for tests and
	// development. https:// is always required elsewhere.
	AllowHTTP bool

	// Retries: attempt n (from 1) that fails with a retryable error waits
	// min(MaxBackoff, max(Retry-After, b/2 + rand·b/2)) with
	// b = min(MaxBackoff, InitialBackoff·2^(n-1)), then tries again, up to
	// MaxAttempts attempts in all.
	InitialBackoff time.Duration // default 1s
	MaxBackoff     time.Duration // default 5m; also caps Retry-After
	MaxAttempts    int           // default 8
	AttemptTimeout time.Duration // one HTTP attempt, answer included; default 10s

	QueueSize      int           // events queued per endpoint; default 256
	SpillSize      int           // overflowing events waiting for the dead-letter store; default 1024
	StoreTimeout   time.Duration // one AddDeadLetter call; default 10s
	ReloadInterval time.Duration // re-read Endpoints this often; default 1m; negative: only on Reload
	MaxValueBytes  int           // longer string values in Event.Data are cut; default 4096
}

// DefaultConfig returns a Config with every default filled in and the
// required fields left nil.
func DefaultConfig() Config {
	return Config{
		InitialBackoff: time.Second,
		MaxBackoff:     5 * time.Minute,
		MaxAttempts:    8,
		AttemptTimeout: 10 * time.Second,
		QueueSize:      256,
		SpillSize:      1024,
		StoreTimeout:   10 * time.Second,
		ReloadInterval: time.Minute,
		MaxValueBytes:  4096,
	}
}

// Validate reports a missing required field or a nonsensical value. Zero
// values are valid: they mean the default.
func (c Config) Validate() error {
	var errs []error
	if c.Endpoints == nil {
		errs = append(errs, errors.New("Endpoints is required"))
	}
	if c.DeadLetters == nil {
		errs = append(errs, errors.New("DeadLetters is required"))
	}
	for _, v := range []struct {
		name string
		val  int64
	}{
		{"InitialBackoff", int64(c.InitialBackoff)}, {"MaxBackoff", int64(c.MaxBackoff)},
		{"MaxAttempts", int64(c.MaxAttempts)}, {"AttemptTimeout", int64(c.AttemptTimeout)},
		{"QueueSize", int64(c.QueueSize)}, {"SpillSize", int64(c.SpillSize)},
		{"StoreTimeout", int64(c.StoreTimeout)}, {"MaxValueBytes", int64(c.MaxValueBytes)},
	} {
		if v.val < 0 {
			errs = append(errs, fmt.Errorf("%s is negative", v.name))
		}
	}
	if c.InitialBackoff > 0 && c.MaxBackoff > 0 && c.MaxBackoff < c.InitialBackoff {
		errs = append(errs, errors.New("MaxBackoff is below InitialBackoff"))
	}
	if c.MaxValueBytes > 0 && c.MaxValueBytes < 16 {
		errs = append(errs, errors.New("MaxValueBytes is below 16"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("webhook config: %w", err)
	}
	return nil
}

// withDefaults fills zero values.
func (c Config) withDefaults() Config {
	def := DefaultConfig()
	setDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	setInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setDur(&c.InitialBackoff, def.InitialBackoff)
	setDur(&c.MaxBackoff, max(def.MaxBackoff, c.InitialBackoff))
	setDur(&c.AttemptTimeout, def.AttemptTimeout)
	setDur(&c.StoreTimeout, def.StoreTimeout)
	setDur(&c.ReloadInterval, def.ReloadInterval)
	setInt(&c.MaxAttempts, def.MaxAttempts)
	setInt(&c.QueueSize, def.QueueSize)
	setInt(&c.SpillSize, def.SpillSize)
	setInt(&c.MaxValueBytes, def.MaxValueBytes)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	return c
}

// sleep waits d or until ctx ends, then returning its cause.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return context.Cause(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
