package webhook

import (
	"errors"
	"strings"
	"testing"
)

func TestEndpointValidate(t *testing.T) {
	ok := Endpoint{Name: "a", URL: "https://hooks.example.com/x?y=1", Secret: "k"}
	for _, tc := range []struct {
		name      string
		change    func(*Endpoint)
		allowHTTP bool
		err       string // "" for valid
	}{
		{"https", func(*Endpoint) {}, false, ""},
		{"https with port", func(e *Endpoint) { e.URL = "https://10.0.0.1:8443/hook" }, false, ""},
		{"slack without secret", func(e *Endpoint) { e.Format, e.Secret = FormatSlack, "" }, false, ""},
		{"event filter", func(e *Endpoint) { e.Events = []string{ReviewRequested, StatementDenied} }, false, ""},
		{"http loopback allowed", func(e *Endpoint) { e.URL = "http://127.0.0.1:8080/hook" }, true, ""},
		{"http localhost allowed", func(e *Endpoint) { e.URL = "http://localhost/hook" }, true, ""},
		{"http ::1 allowed", func(e *Endpoint) { e.URL = "http://[::1]:80/hook" }, true, ""},
		{"http refused", func(e *Endpoint) { e.URL = "http://127.0.0.1/hook" }, false, "only https:// is accepted"},
		{"http to the world", func(e *Endpoint) { e.URL = "http://hooks.example.com/" }, true, "loopback host only"},
		{"ftp", func(e *Endpoint) { e.URL = "ftp://example.com/" }, true, `scheme is "ftp"`},
		{"relative", func(e *Endpoint) { e.URL = "/hook" }, false, "not absolute"},
		{"no host", func(e *Endpoint) { e.URL = "https:///hook" }, false, "no host"},
		{"opaque", func(e *Endpoint) { e.URL = "https:hooks.example.com" }, false, "no host"},
		{"empty URL", func(e *Endpoint) { e.URL = "" }, false, "URL is empty"},
		{"unparsable", func(e *Endpoint) { e.URL = "https://exa mple.com/%zz" }, false, "does not parse"},
		{"credentials", func(e *Endpoint) { e.URL = "https://user:pw@example.com/" }, false, "credentials"},
		{"no name", func(e *Endpoint) { e.Name = "" }, false, "name is empty"},
		{"long name", func(e *Endpoint) { e.Name = strings.Repeat("n", MaxNameLen+1) }, false, "name must be"},
		{"control in name", func(e *Endpoint) { e.Name = "a\nb" }, false, "name must be"},
		{"json without secret", func(e *Endpoint) { e.Secret = "" }, false, "secret is empty"},
		{"unknown format", func(e *Endpoint) { e.Format = "xml" }, false, `format "xml"`},
		{"unknown event", func(e *Endpoint) { e.Events = []string{"session.start"} }, false, `unknown event type "session.start"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ok
			tc.change(&e)
			err := e.Validate(tc.allowHTTP)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("valid endpoint refused: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalidEndpoint) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

// An invalid URL's error may not repeat the URL: its path can be a credential.
func TestValidateDoesNotLeakURL(t *testing.T) {
	e := Endpoint{Name: "a", URL: "https://hooks.slack.com/services/T0/B0/SECRET%zz", Format: FormatSlack}
	err := e.Validate(false)
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("error %v", err)
	}
	if w := where("https://hooks.slack.com/services/T0/B0/SECRET?x=SECRET"); w != "https://hooks.slack.com" {
		t.Fatalf("where = %q", w)
	}
}

func TestStaticCopies(t *testing.T) {
	eps := []Endpoint{{Name: "a"}}
	src := Static(eps...)
	eps[0].Name = "changed"
	got, _ := src(t.Context())
	got[0].Name = "changed too"
	again, _ := src(t.Context())
	if again[0].Name != "a" {
		t.Fatalf("Static shares its slice: %q", again[0].Name)
	}
}
