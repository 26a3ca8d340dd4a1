package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Bounds on what is read of an answer: a snippet for the error message, and
// the rest drained (up to a limit) so the connection can be reused.
const (
	snippetBytes = 256
	drainBytes   = 64 << 10
)

// userAgent identifies our requests to receivers.
const userAgent = "sluice-webhook/1"

// outcome is the result of one attempt.
type outcome struct {
	err        error         // nil: delivered
	retry      bool          // the failure may pass: try again
	retryAfter time.Duration // the receiver's Retry-After, 0 if none
}

// attempt POSTs body to ep once, within Config.AttemptTimeout, and observes
// its duration. It does not count its result: callers do.
func (d *Dispatcher) attempt(ctx context.Context, ep Endpoint, typ, id string, body []byte, m *endpointMetrics) outcome {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, d.cfg.AttemptTimeout)
	defer cancel()
	dest := where(ep.URL)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return outcome{err: fmt.Errorf("build request to %s: %w", dest, stripURL(err))}
	}
	start := d.cfg.Clock()
	ts := start.Unix()
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", userAgent)
	h.Set(HeaderEvent, typ)
	h.Set(HeaderDelivery, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	if ep.Secret != "" {
		h.Set(HeaderSignature, Sign(ep.Secret, ts, body))
	}

	resp, err := d.client.Do(req)
	if err != nil {
		m.duration.Observe(d.cfg.Clock().Sub(start).Seconds())
		switch {
		case parent.Err() != nil:
			err = fmt.Errorf("cancelled: %w", context.Cause(parent))
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
			err = fmt.Errorf("no answer within %s", d.cfg.AttemptTimeout)
		default:
			err = stripURL(err)
		}
		return outcome{err: fmt.Errorf("POST %s: %w", dest, err), retry: true}
	}
	defer resp.Body.Close()
	snip := readSnippet(resp.Body)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBytes))
	m.duration.Observe(d.cfg.Clock().Sub(start).Seconds())

	code := resp.StatusCode
	if code >= 200 && code <= 299 {
		return outcome{}
	}
	o := outcome{err: fmt.Errorf("POST %s: %s%s", dest, resp.Status, snip)}
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		o.retry = true
		o.retryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), d.cfg.Clock())
	case code >= 300 && code <= 399:
		o.err = fmt.Errorf("POST %s: %s: redirects are not followed; configure the final URL", dest, resp.Status)
	}
	return o
}

// readSnippet returns ": <start of the body>" made printable, or "".
func readSnippet(r io.Reader) string {
	buf := make([]byte, snippetBytes)
	n, _ := io.ReadFull(r, buf)
	s := strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, strings.ToValidUTF8(string(buf[:n]), ""))
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	return ": " + s
}

// stripURL removes the URL that *url.Error repeats: it may hold a
// credential (Slack's does, in its path). The caller names the host.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// maxRetryAfter bounds the delay-seconds form before it is turned into a
// Duration (which would overflow past 292 years); the backoff cap applies later.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date
// (RFC 9110, section 10.2.3). It returns false when v is empty or invalid; a
// date in the past is a zero wait.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return maxRetryAfter, true
			}
			return 0, false
		}
		return min(time.Duration(min(n, uint64(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxRetryAfter), true
}
