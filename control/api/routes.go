package api

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// access is who may call a route.
type access int

const (
	public    access = iota // no token
	anyUser                 // any valid token; the handler limits what a non-admin sees
	adminOnly               // a token of a member of AdminGroup
)

func (a access) String() string {
	switch a {
	case public:
		return "none"
	case anyUser:
		return "user"
	}
	return "admin"
}

// route is one entry of the route table. Every route of the API is here:
// New registers exactly these, the OpenAPI document must list exactly these
// (a test checks both ways), and the authorisation test walks them all.
type route struct {
	Method string
	Path   string
	Access access
	// Body: the route reads a JSON object body (see decode).
	Body bool
	// Query lists the query parameters the route accepts; any other is
	// answered 400, and so is a parameter given twice.
	Query   []string
	handler http.HandlerFunc
}

func (s *Server) routeTable() []route {
	sessionQuery := []string{"user", "connection", "outcome", "since", "until", "limit"}
	return []route{
		{Method: "GET", Path: "/healthz", Access: public, handler: s.healthz},
		{Method: "GET", Path: "/readyz", Access: public, handler: s.readyz},
		{Method: "GET", Path: "/api/v1/openapi.yaml", Access: public, handler: s.openAPI},
		{Method: "POST", Path: "/api/v1/login", Access: public, Body: true, handler: s.login},
		{Method: "GET", Path: "/api/v1/info", Access: public, handler: s.info},
		{Method: "GET", Path: "/api/v1/me", Access: anyUser, handler: s.me},

		{Method: "GET", Path: "/api/v1/users", Access: adminOnly, handler: s.listUsers},
		{Method: "PUT", Path: "/api/v1/users/{name}", Access: adminOnly, Body: true, handler: s.putUser},
		{Method: "DELETE", Path: "/api/v1/users/{name}", Access: adminOnly, handler: s.deleteUser},
		{Method: "GET", Path: "/api/v1/users/{name}/tokens", Access: anyUser, handler: s.listTokens},
		{Method: "POST", Path: "/api/v1/users/{name}/tokens", Access: anyUser, Body: true, handler: s.createToken},
		{Method: "DELETE", Path: "/api/v1/tokens/{id}", Access: anyUser, handler: s.revokeToken},

		{Method: "GET", Path: "/api/v1/groups", Access: adminOnly, handler: s.listGroups},
		{Method: "GET", Path: "/api/v1/groups/{name}", Access: adminOnly, handler: s.getGroup},
		{Method: "PUT", Path: "/api/v1/groups/{name}", Access: adminOnly, Body: true, handler: s.putGroup},
		{Method: "DELETE", Path: "/api/v1/groups/{name}", Access: adminOnly, handler: s.deleteGroup},

		{Method: "GET", Path: "/api/v1/agents", Access: adminOnly, handler: s.listAgents},
		{Method: "POST", Path: "/api/v1/agents", Access: adminOnly, Body: true, handler: s.postAgent},
		{Method: "PUT", Path: "/api/v1/agents/{name}", Access: adminOnly, Body: true, handler: s.putAgent},
		{Method: "DELETE", Path: "/api/v1/agents/{name}", Access: adminOnly, handler: s.deleteAgent},

		{Method: "GET", Path: "/api/v1/connections", Access: anyUser, handler: s.listConnections},
		{Method: "PUT", Path: "/api/v1/connections/{name}", Access: adminOnly, Body: true, handler: s.putConnection},
		{Method: "DELETE", Path: "/api/v1/connections/{name}", Access: adminOnly, handler: s.deleteConnection},

		{Method: "GET", Path: "/api/v1/rules", Access: adminOnly, handler: s.listRules},
		{Method: "GET", Path: "/api/v1/rules/{name}", Access: adminOnly, handler: s.getRule},
		{Method: "PUT", Path: "/api/v1/rules/{name}", Access: adminOnly, Body: true, handler: s.putRule},
		{Method: "DELETE", Path: "/api/v1/rules/{name}", Access: adminOnly, handler: s.deleteRule},

		{Method: "GET", Path: "/api/v1/sessions", Access: anyUser, Query: sessionQuery, handler: s.listSessions},
		{Method: "GET", Path: "/api/v1/sessions/{id}", Access: anyUser, handler: s.getSession},
		{Method: "GET", Path: "/api/v1/sessions/{id}/statements", Access: anyUser, Query: []string{"limit"}, handler: s.listStatements},
		{Method: "GET", Path: "/api/v1/sessions/{id}/recording", Access: adminOnly, handler: s.getRecording},
		{Method: "GET", Path: "/api/v1/sessions/{id}/verify", Access: adminOnly, handler: s.verifyRecording},
		{Method: "POST", Path: "/api/v1/sessions/{id}/kill", Access: adminOnly, Body: true, handler: s.killSession},

		{Method: "GET", Path: "/api/v1/reviews", Access: anyUser, Query: []string{"status", "user", "connection", "kind", "limit"}, handler: s.listReviews},
		{Method: "GET", Path: "/api/v1/reviews/{id}", Access: anyUser, handler: s.getReview},
		{Method: "POST", Path: "/api/v1/reviews/{id}/approve", Access: adminOnly, Body: true, handler: s.approveReview},
		{Method: "POST", Path: "/api/v1/reviews/{id}/reject", Access: adminOnly, Body: true, handler: s.rejectReview},

		{Method: "GET", Path: "/api/v1/webhooks", Access: adminOnly, handler: s.listWebhooks},
		{Method: "GET", Path: "/api/v1/webhooks/{name}", Access: adminOnly, handler: s.getWebhook},
		{Method: "PUT", Path: "/api/v1/webhooks/{name}", Access: adminOnly, Body: true, handler: s.putWebhook},
		{Method: "DELETE", Path: "/api/v1/webhooks/{name}", Access: adminOnly, handler: s.deleteWebhook},
		{Method: "GET", Path: "/api/v1/webhooks/{name}/dead-letters", Access: adminOnly, Query: []string{"limit"}, handler: s.listWebhookDeadLetters},
		{Method: "GET", Path: "/api/v1/dead-letters", Access: adminOnly, Query: []string{"webhook", "limit"}, handler: s.listDeadLetters},
		{Method: "POST", Path: "/api/v1/dead-letters/{id}/redeliver", Access: adminOnly, Body: true, handler: s.redeliver},
		{Method: "DELETE", Path: "/api/v1/dead-letters/{id}", Access: adminOnly, handler: s.deleteDeadLetter},
	}
}

// wrap applies the route's access level, then its query check.
func (s *Server) wrap(rt route) http.Handler {
	h := func(w http.ResponseWriter, r *http.Request) {
		if !checkQuery(w, r.URL.Query(), rt.Query) {
			return
		}
		rt.handler(w, r)
	}
	switch rt.Access {
	case public:
		return http.HandlerFunc(h)
	case anyUser:
		return s.user(h)
	default:
		return s.admin(h)
	}
}

// checkQuery answers 400 for a parameter not in allowed or given twice.
func checkQuery(w http.ResponseWriter, q url.Values, allowed []string) bool {
	for k, v := range q {
		if !slices.Contains(allowed, k) {
			msg := "unknown query parameter " + strconv.Quote(k)
			if len(allowed) > 0 {
				msg += " (this route accepts " + strings.Join(allowed, ", ") + ")"
			} else {
				msg += " (this route takes none)"
			}
			writeError(w, http.StatusBadRequest, msg)
			return false
		}
		if len(v) > 1 {
			writeError(w, http.StatusBadRequest, "query parameter "+strconv.Quote(k)+" is given more than once")
			return false
		}
	}
	return true
}

// user requires a valid bearer token.
func (s *Server) user(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

// admin requires a valid bearer token of a member of AdminGroup.
func (s *Server) admin(h http.HandlerFunc) http.Handler {
	return s.user(func(w http.ResponseWriter, r *http.Request) {
		if !isAdmin(identity(r)) {
			writeError(w, http.StatusForbidden, "admin access required")
			return
		}
		h(w, r)
	})
}
