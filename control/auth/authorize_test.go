package auth

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
)

func deny(t *testing.T, err error) string {
	t.Helper()
	var e *engine.Error
	if !errors.As(err, &e) || e.Code != engine.CodeDenied {
		t.Fatalf("want a denial, got %v", err)
	}
	return e.Message
}

func TestAuthorizeRules(t *testing.T) {
	ctx := context.Background()
	s, st, c := newTest(t)
	// 2025-01-01 00:00 UTC is a Wednesday; move to Wednesday 10:00.
	c.Add(10 * time.Hour)
	st.PutConnection(ctx, store.Connection{Name: "prod", Agent: "a", Type: "postgres"})
	st.PutConnection(ctx, store.Connection{Name: "stage", Agent: "a", Type: "postgres"})
	bob := engine.Identity{User: "bob", Groups: []string{"dev", "oncall"}}

	// No rule at all.
	_, err := s.Authorize(ctx, bob, "prod", "postgres")
	if msg := deny(t, err); msg != `permission denied: user "bob" has no access rule for connection "prod"` {
		t.Fatalf("message %q", msg)
	}

	// Rules for other groups or other connections do not apply.
	st.PutRule(ctx, store.AccessRule{Name: "ops", Groups: []string{"ops"}, Connections: []string{"*"}})
	st.PutRule(ctx, store.AccessRule{Name: "dev-stage", Groups: []string{"dev"}, Connections: []string{"stage"}})
	deny(t, errOf(s.Authorize(ctx, bob, "prod", "postgres")))
	if p, err := s.Authorize(ctx, bob, "stage", "postgres"); err != nil || p.Rule != "dev-stage" {
		t.Fatalf("stage: %+v %v", p, err)
	}

	// A rule outside its hours: the message names them.
	st.PutRule(ctx, store.AccessRule{Name: "dev-prod", Groups: []string{"dev"}, Connections: []string{"prod"}, Hours: "Mon-Fri 12:00-18:00 UTC"})
	_, err = s.Authorize(ctx, bob, "prod", "postgres")
	if msg := deny(t, err); msg != `permission denied: user "bob" may use connection "prod" only between Mon-Fri 12:00-18:00 UTC` {
		t.Fatalf("message %q", msg)
	}
	st.PutRule(ctx, store.AccessRule{Name: "oncall-night", Groups: []string{"oncall"}, Connections: []string{"prod"}, Hours: "mon-fri 20:00-06:00 UTC"})
	_, err = s.Authorize(ctx, bob, "prod", "postgres")
	if msg := deny(t, err); !strings.HasSuffix(msg, "only between Mon-Fri 12:00-18:00 UTC or Mon-Fri 20:00-06:00 UTC") {
		t.Fatalf("message %q", msg)
	}
	// Inside the hours it applies, and the session ends with them.
	c.Add(3 * time.Hour) // Wednesday 13:00
	p, err := s.Authorize(ctx, bob, "prod", "postgres")
	if err != nil || p.Rule != "dev-prod" || p.MaxSession != 5*time.Hour {
		t.Fatalf("in hours: %+v %v", p, err)
	}
	c.Add(-3 * time.Hour)

	// A group member's "*" rule applies to every connection.
	st.PutRule(ctx, store.AccessRule{Name: "oncall-all", Groups: []string{"oncall"}, Connections: []string{"*"}})
	if p, err := s.Authorize(ctx, bob, "prod", "postgres"); err != nil || p.Rule != "oncall-all" || p.MaxSession != 0 {
		t.Fatalf("star: %+v %v", p, err)
	}
	// Another user without the groups still gets nothing.
	if _, err := s.Authorize(ctx, engine.Identity{User: "eve", Groups: []string{"guest"}}, "prod", "postgres"); err == nil {
		t.Fatal("eve admitted")
	}
}

func errOf(_ *engine.Plan, err error) error { return err }

func TestAuthorizeStacking(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTest(t)
	st.PutConnection(ctx, store.Connection{Name: "prod", Agent: "a", Type: "postgres", Policy: engine.Policy{
		Guardrails: &engine.GuardrailPolicy{Deny: []string{"drop"}},
		Masking:    &engine.MaskingPolicy{Detectors: []string{"email"}, Style: "partial"},
	}})
	st.PutRule(ctx, store.AccessRule{Name: "b-contractors", Groups: []string{"contractors"}, Connections: []string{"prod"},
		Policy: engine.Policy{
			Guardrails: &engine.GuardrailPolicy{Deny: []string{"truncate", "drop"}, DenyTables: []string{"salaries"}},
			Masking:    &engine.MaskingPolicy{Detectors: []string{"email", "phone"}, Style: "hash"},
		},
		RequireReview: true, ReviewStatements: []string{"ddl", "delete"}, MaxSession: 2 * time.Hour,
	})
	st.PutRule(ctx, store.AccessRule{Name: "a-dev", Groups: []string{"dev"}, Connections: []string{"*"},
		Policy:           engine.Policy{Masking: &engine.MaskingPolicy{Columns: []string{"*.ssn"}, Style: "redact"}},
		ReviewStatements: []string{"write:payments", "ddl"}, MaxSession: 8 * time.Hour,
	})
	st.PutRule(ctx, store.AccessRule{Name: "c-nolimit", Groups: []string{"dev"}, Connections: []string{"prod"}})

	p, err := s.Authorize(ctx, engine.Identity{User: "carol", Groups: []string{"dev", "contractors"}}, "prod", "postgres")
	if err != nil {
		t.Fatal(err)
	}
	want := engine.Plan{Connection: "prod", Protocol: "postgres", Agent: "a",
		MaxSession: 2 * time.Hour, Rule: "a-dev+b-contractors+c-nolimit", RequireReview: true,
		ReviewStatements: []string{"ddl", "delete", "write:payments"},
		Policy: engine.Policy{
			Guardrails: &engine.GuardrailPolicy{Deny: []string{"drop", "truncate"}, DenyTables: []string{"salaries"}},
			Masking:    &engine.MaskingPolicy{Detectors: []string{"email", "phone"}, Columns: []string{"*.ssn"}, Style: "redact"},
		},
	}
	if !reflect.DeepEqual(*p, want) {
		t.Fatalf("plan\n got %+v %s\nwant %+v %s", *p, p.Policy.Encode(), want, want.Policy.Encode())
	}

	// Only the dev rules: no review, the connection's policy plus *.ssn.
	p, err = s.Authorize(ctx, engine.Identity{User: "dave", Groups: []string{"dev"}}, "prod", "postgres")
	if err != nil || p.RequireReview || p.MaxSession != 8*time.Hour || p.Rule != "a-dev+c-nolimit" ||
		!reflect.DeepEqual(p.ReviewStatements, []string{"ddl", "write:payments"}) || p.Policy.Masking.Style != "redact" {
		t.Fatalf("dev plan %+v %v", p, err)
	}
}

func TestAuthorizeBadHoursFailsClosed(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTest(t)
	st.PutConnection(ctx, store.Connection{Name: "prod", Agent: "a", Type: "postgres"})
	st.PutRule(ctx, store.AccessRule{Name: "a-ok", Groups: []string{"dev"}, Connections: []string{"*"}})
	st.PutRule(ctx, store.AccessRule{Name: "b-broken", Groups: []string{"dev"}, Connections: []string{"prod"}, Hours: "weekdays"})
	_, err := s.Authorize(ctx, engine.Identity{User: "bob", Groups: []string{"dev"}}, "prod", "postgres")
	if msg := deny(t, err); !strings.Contains(msg, `access rule "b-broken" has invalid hours`) {
		t.Fatalf("message %q", msg)
	}
	// A broken rule that does not match the session is irrelevant.
	st.PutConnection(ctx, store.Connection{Name: "stage", Agent: "a", Type: "postgres"})
	if _, err := s.Authorize(ctx, engine.Identity{User: "bob", Groups: []string{"dev"}}, "stage", "postgres"); err != nil {
		t.Fatalf("stage: %v", err)
	}
}

// When several rules with hours apply, the session may last until the latest
// of their ends; one rule without hours lifts the cap.
func TestAuthorizeHoursCap(t *testing.T) {
	ctx := context.Background()
	s, st, c := newTest(t)
	c.Add(10 * time.Hour) // Wednesday 10:00 UTC
	st.PutConnection(ctx, store.Connection{Name: "prod", Agent: "a", Type: "postgres"})
	st.PutRule(ctx, store.AccessRule{Name: "a", Groups: []string{"dev"}, Connections: []string{"prod"}, Hours: "Wed 09:00-12:00 UTC", MaxSession: 4 * time.Hour})
	st.PutRule(ctx, store.AccessRule{Name: "b", Groups: []string{"dev"}, Connections: []string{"prod"}, Hours: "Wed 08:00-13:00 UTC"})
	id := engine.Identity{User: "bob", Groups: []string{"dev"}}
	p, err := s.Authorize(ctx, id, "prod", "postgres")
	if err != nil || p.MaxSession != 3*time.Hour {
		t.Fatalf("capped: %+v %v", p, err)
	}
	st.PutRule(ctx, store.AccessRule{Name: "c", Groups: []string{"dev"}, Connections: []string{"prod"}})
	p, err = s.Authorize(ctx, id, "prod", "postgres")
	if err != nil || p.MaxSession != 4*time.Hour {
		t.Fatalf("uncapped: %+v %v", p, err)
	}
}
