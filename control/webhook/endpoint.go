package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"unicode"
)

// Formats of a delivery body.
const (
	FormatJSON  = "json"  // the Event as JSON (the default)
	FormatSlack = "slack" // a Slack incoming-webhook message
)

// MaxNameLen bounds an endpoint's name, which is also a metric label value.
const MaxNameLen = 128

// Endpoint is one configured receiver.
//
// The URL may hold a credential in its path (Slack's incoming webhooks do),
// so it is never logged or put in an error whole: only its scheme and host.
type Endpoint struct {
	Name   string   // unique; the metric label and the dead letters' key
	URL    string   // https://… (http:// to loopback only, with Config.AllowHTTP)
	Secret string   // HMAC key; required for "json", optional for "slack"
	Format string   // FormatJSON ("" means it) or FormatSlack
	Events []string // event types to deliver; empty means all
}

// Endpoints returns the configured endpoints. The Dispatcher calls it at
// start, every Config.ReloadInterval and on Reload. A store adapts its
// webhook list to it; an error keeps the previous set in force.
type Endpoints func(ctx context.Context) ([]Endpoint, error)

// Static returns an Endpoints source that always answers eps.
func Static(eps ...Endpoint) Endpoints {
	eps = slices.Clone(eps)
	return func(context.Context) ([]Endpoint, error) { return slices.Clone(eps), nil }
}

// ErrInvalidEndpoint is wrapped by every error of Endpoint.Validate.
var ErrInvalidEndpoint = errors.New("invalid webhook endpoint")

// Validate checks the endpoint as the Dispatcher will use it. With allowHTTP
// false only https:// URLs pass; with it, http:// passes too but only to a
// loopback host (localhost, 127.0.0.0/8, ::1), for tests and development.
func (e Endpoint) Validate(allowHTTP bool) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("webhook %q: %w: %s", e.Name, ErrInvalidEndpoint, fmt.Sprintf(format, a...))
	}
	if e.Name == "" {
		return bad("name is empty")
	}
	if len(e.Name) > MaxNameLen || strings.IndexFunc(e.Name, unicode.IsControl) >= 0 {
		return bad("name must be at most %d bytes without control characters", MaxNameLen)
	}
	if err := validateURL(e.URL, allowHTTP); err != nil {
		return bad("%v", err)
	}
	switch e.Format {
	case "", FormatJSON:
		if e.Secret == "" {
			return bad("secret is empty: a json endpoint's deliveries must be signed")
		}
	case FormatSlack:
	default:
		return bad("format %q is not %q or %q", e.Format, FormatJSON, FormatSlack)
	}
	for _, t := range e.Events {
		if !knownType(t) {
			return bad("unknown event type %q (known: %s)", t, strings.Join(EventTypes(), ", "))
		}
	}
	return nil
}

func validateURL(raw string, allowHTTP bool) error {
	if raw == "" {
		return errors.New("URL is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the raw URL, which may hold a credential.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("URL does not parse: %v", err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP {
			return fmt.Errorf("URL scheme is http: only https:// is accepted")
		}
		if !loopback(u.Hostname()) {
			return fmt.Errorf("URL scheme is http: allowed to a loopback host only, not %q", u.Hostname())
		}
	case "":
		return errors.New("URL is not absolute: want https://host/path")
	default:
		return fmt.Errorf("URL scheme is %q: only https:// is accepted", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("URL has no host")
	}
	if u.User != nil {
		return errors.New("URL carries user credentials: put the key in the secret instead")
	}
	return nil
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// wants reports whether e subscribes to event type t.
func (e *Endpoint) wants(t string) bool {
	return len(e.Events) == 0 || slices.Contains(e.Events, t)
}

// where is the URL fit for logs and errors: scheme and host, no path, no
// query (a Slack URL's path is its credential).
func where(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host
}
