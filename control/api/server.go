package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/sluice-gw/sluice/control/auth"
	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
)

// Agents is the live view of agent tunnels (transport.Hub satisfies it).
type Agents interface {
	Online(name string) bool
	Disconnect(name string)
}

// Config configures a Server.
type Config struct {
	Store         store.Store      // required
	Clock         func() time.Time // nil: time.Now
	TunnelAddr    string           // host:port put in agent DSNs, e.g. "127.0.0.1:8010"
	TunnelTLS     bool             // DSN scheme grpcs (true) or grpc
	CAFingerprint string           // "sha256:HEX", put in grpcs DSNs and /info
	CAPEM         []byte           // served by /info
	PGAddr        string           // Postgres listener address served by /info
	Agents        Agents           // nil: every agent offline, Disconnect a no-op
	Ready         func() error     // optional extra readiness check for /readyz
	Logger        *slog.Logger     // nil: slog.Default()
}

// Validate reports a missing required field.
func (c Config) Validate() error {
	if c.Store == nil {
		return errors.New("api: Config.Store is required")
	}
	if c.TunnelAddr == "" {
		return errors.New("api: Config.TunnelAddr is required")
	}
	if c.TunnelTLS && c.CAFingerprint == "" {
		return errors.New("api: Config.CAFingerprint is required with TunnelTLS")
	}
	return nil
}

// Durations and limits of the API.
const (
	LoginTTL        = 12 * time.Hour
	DefaultTokenTTL = 8 * time.Hour
	MaxTokenTTL     = 10 * 365 * 24 * time.Hour
	MaxBodyBytes    = 1 << 20
	DefaultSessions = 100
	MaxSessions     = 10000
	// AdminGroup is the group whose members may use admin routes.
	AdminGroup = auth.AdminGroup
)

// Server serves the REST API.
//
// Routes (all JSON; every error is {"error":"message"}):
//
//	GET    /healthz                         200 "ok"
//	GET    /readyz                          200 "ok" | 503
//	POST   /api/v1/login                    {"user","password"} → {"token","user","expires_at"}
//	GET    /api/v1/info                     {"pg_addr","tunnel_addr","ca_fingerprint","ca_pem"} (no auth)
//	GET    /api/v1/me                       {"name","groups"}
//	GET    /api/v1/users                    admin
//	PUT    /api/v1/users/{name}             admin; {"password"?,"groups"?}
//	DELETE /api/v1/users/{name}             admin; 204
//	POST   /api/v1/users/{name}/tokens      admin or self; {"ttl"?} → {"id","token","user","expires_at"}
//	GET    /api/v1/agents                   admin
//	POST   /api/v1/agents                   admin; {"name"} → create or rotate key → {"name","key","dsn"}
//	PUT    /api/v1/agents/{name}            admin; create if new (with key), else {"name"}
//	DELETE /api/v1/agents/{name}            admin; 204, drops its tunnel
//	GET    /api/v1/connections              any user; target (redacted) for admins only; guardrails, masking
//	PUT    /api/v1/connections/{name}       admin; {"agent","type"?,"target","guardrails"?,"masking"?}
//	DELETE /api/v1/connections/{name}       admin; 204
//	GET    /api/v1/sessions?limit=N         admin; newest first
type Server struct {
	cfg  Config
	st   store.Store
	auth *auth.Service
	now  func() time.Time
	log  *slog.Logger
	mux  *http.ServeMux
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Agents == nil {
		cfg.Agents = noAgents{}
	}
	s := &Server{
		cfg:  cfg,
		st:   cfg.Store,
		auth: auth.New(cfg.Store, cfg.Clock, cfg.Logger),
		now:  cfg.Clock,
		log:  cfg.Logger,
		mux:  http.NewServeMux(),
	}
	s.routes()
	return s, nil
}

type noAgents struct{}

func (noAgents) Online(string) bool { return false }
func (noAgents) Disconnect(string)  {}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	m.HandleFunc("POST /api/v1/login", s.login)
	m.HandleFunc("GET /api/v1/info", s.info)
	m.Handle("GET /api/v1/me", s.user(s.me))

	m.Handle("GET /api/v1/users", s.admin(s.listUsers))
	m.Handle("PUT /api/v1/users/{name}", s.admin(s.putUser))
	m.Handle("DELETE /api/v1/users/{name}", s.admin(s.deleteUser))
	m.Handle("POST /api/v1/users/{name}/tokens", s.user(s.createToken))

	m.Handle("GET /api/v1/agents", s.admin(s.listAgents))
	m.Handle("POST /api/v1/agents", s.admin(s.postAgent))
	m.Handle("PUT /api/v1/agents/{name}", s.admin(s.putAgent))
	m.Handle("DELETE /api/v1/agents/{name}", s.admin(s.deleteAgent))

	m.Handle("GET /api/v1/connections", s.user(s.listConnections))
	m.Handle("PUT /api/v1/connections/{name}", s.admin(s.putConnection))
	m.Handle("DELETE /api/v1/connections/{name}", s.admin(s.deleteConnection))

	m.Handle("GET /api/v1/sessions", s.admin(s.listSessions))
}

// Handler returns the API's handler; mount it at "/" and add /metrics etc.
// beside it.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.ServeHTTP) }

// ServeHTTP implements http.Handler. Unknown routes and wrong methods get the
// mux's status (404, 405 with Allow) with a JSON error body.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.mux.ServeHTTP(&jsonErrorWriter{ResponseWriter: w}, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// identityKey carries the caller's engine.Identity in the request context.
type identityKey struct{}

func identity(r *http.Request) engine.Identity {
	id, _ := r.Context().Value(identityKey{}).(engine.Identity)
	return id
}

func isAdmin(id engine.Identity) bool { return slices.Contains(id.Groups, AdminGroup) }

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

func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (engine.Identity, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !equalFold(h[:len(prefix)], prefix) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
		writeError(w, http.StatusUnauthorized, "missing bearer token")
		return engine.Identity{}, false
	}
	id, err := s.auth.Identify(r.Context(), h[len(prefix):])
	if err != nil {
		if e := engine.AsError(err); e.Code == engine.CodeAuthFailed {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, e.Message)
			return engine.Identity{}, false
		}
		s.internal(w, r, "authenticate", err)
		return engine.Identity{}, false
	}
	return id, true
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// internal logs err and answers 500 without details.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.Error("api: "+what, "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}

// storeErr answers 404 for ErrNotFound and 500 otherwise.
func (s *Server) storeErr(w http.ResponseWriter, r *http.Request, what string, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, what+" not found")
		return
	}
	s.internal(w, r, what, err)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, "ok")
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.st.Ping(ctx); err != nil {
		s.log.Warn("api: not ready: store", "err", err)
		writeError(w, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			writeError(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, "ok")
}

type infoJSON struct {
	PGAddr        string `json:"pg_addr"`
	TunnelAddr    string `json:"tunnel_addr"`
	CAFingerprint string `json:"ca_fingerprint"`
	CAPEM         string `json:"ca_pem"`
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, infoJSON{
		PGAddr:        s.cfg.PGAddr,
		TunnelAddr:    s.cfg.TunnelAddr,
		CAFingerprint: s.cfg.CAFingerprint,
		CAPEM:         string(s.cfg.CAPEM),
	})
}

type meJSON struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	id := identity(r)
	writeJSON(w, http.StatusOK, meJSON{Name: id.User, Groups: nonNil(id.Groups)})
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}
