package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
)

// AnyConnection in an access rule's Connections matches every connection.
const AnyConnection = "*"

// Authorize implements engine.Authorizer with access rules.
//
// The connection must exist and be of protocol (else CodeUnknownConnection).
// A rule applies when one of its Groups is one of id.Groups, one of its
// Connections is the connection's name or "*", and now is inside its Hours.
// With no applicable rule the session is denied (CodeDenied) before anything
// reaches the agent. Otherwise the applicable rules stack, the strictest
// winning:
//
//   - Policy: the connection's own policy merged with every rule's
//     (MergePolicies);
//   - MaxSession: the smallest non-zero one, further capped at the end of
//     the rules' hours when every applicable rule has hours (a session
//     admitted at 17:50 under "Mon-Fri 08:00-18:00 UTC" lasts 10 minutes);
//   - RequireReview: if any rule requires it;
//   - ReviewStatements: the union, sorted;
//   - Rule: the rule names joined by "+", in name order.
//
// A matching rule whose Hours do not parse denies the session (fail closed)
// and is logged. Rules and the connection are read per call, so a change
// applies to the next session. No user name is special: admins are the
// members of a group that a rule grants "*" (see Bootstrap).
func (s *Service) Authorize(ctx context.Context, id engine.Identity, connection, protocol string) (*engine.Plan, error) {
	c, err := s.store.GetConnection(ctx, connection)
	if errors.Is(err, store.ErrNotFound) {
		return nil, engine.Errorf(engine.CodeUnknownConnection, "connection \"%s\" does not exist", connection)
	}
	if err != nil {
		return nil, internal("look up connection", err)
	}
	if c.Type != protocol {
		return nil, engine.Errorf(engine.CodeUnknownConnection,
			"connection \"%s\" is a %s connection, not %s", connection, c.Type, protocol)
	}
	rules, err := s.store.ListRules(ctx)
	if err != nil {
		return nil, internal("list access rules", err)
	}
	now := s.now()

	type granted struct {
		rule  store.AccessRule
		hours Hours
	}
	var applicable []granted
	var outside []string // hours of matching rules that are closed now
	for _, r := range rules {
		if !intersects(r.Groups, id.Groups) || !(slices.Contains(r.Connections, c.Name) || slices.Contains(r.Connections, AnyConnection)) {
			continue
		}
		h, err := s.parseHours(r.Hours)
		if err != nil {
			s.log.Error("access rule has invalid hours: sessions it matches are denied", "rule", r.Name, "hours", r.Hours, "err", err)
			return nil, &engine.Error{Code: engine.CodeDenied,
				Message: fmt.Sprintf("permission denied: access rule %q has invalid hours; an admin must fix it", r.Name), Err: err}
		}
		if !h.Contains(now) {
			if spec := h.String(); !slices.Contains(outside, spec) {
				outside = append(outside, spec)
			}
			continue
		}
		applicable = append(applicable, granted{r, h})
	}
	if len(applicable) == 0 {
		if len(outside) > 0 {
			return nil, engine.Deny(fmt.Sprintf("permission denied: user %q may use connection %q only between %s",
				id.User, c.Name, strings.Join(outside, " or ")))
		}
		return nil, engine.Deny(fmt.Sprintf("permission denied: user %q has no access rule for connection %q", id.User, c.Name))
	}

	plan := &engine.Plan{Connection: c.Name, Protocol: c.Type, Agent: c.Agent, Target: c.Target}
	policies := []engine.Policy{c.Policy}
	names := make([]string, 0, len(applicable))
	var hoursEnd time.Time // latest end of the rules' hours; zero: unbounded
	bounded := true
	for _, g := range applicable {
		r := g.rule
		names = append(names, r.Name)
		policies = append(policies, r.Policy)
		plan.MaxSession = minNonZero(plan.MaxSession, r.MaxSession)
		plan.RequireReview = plan.RequireReview || r.RequireReview
		for _, k := range r.ReviewStatements {
			if !slices.Contains(plan.ReviewStatements, k) {
				plan.ReviewStatements = append(plan.ReviewStatements, k)
			}
		}
		if end, ok := g.hours.End(now); ok && bounded {
			if end.After(hoursEnd) {
				hoursEnd = end
			}
		} else {
			bounded = false
		}
	}
	if bounded {
		plan.MaxSession = minNonZero(plan.MaxSession, hoursEnd.Sub(now))
	}
	slices.Sort(plan.ReviewStatements)
	plan.Rule = strings.Join(names, "+")
	plan.Policy = MergePolicies(policies...)
	return plan, nil
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func minNonZero(a, b time.Duration) time.Duration {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	}
	return min(a, b)
}

// parseHours is ParseHours with a small cache: Authorize runs per session
// and zone loading is not free.
func (s *Service) parseHours(spec string) (Hours, error) {
	if spec == "" {
		return Hours{}, nil
	}
	s.hoursMu.Lock()
	defer s.hoursMu.Unlock()
	if e, ok := s.hours[spec]; ok {
		return e.h, e.err
	}
	h, err := ParseHours(spec)
	if len(s.hours) >= maxCachedHours {
		clear(s.hours)
	}
	s.hours[spec] = hoursEntry{h, err}
	return h, err
}
