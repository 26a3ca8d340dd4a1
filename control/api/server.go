package api

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// LoginFunc checks a local password and issues a token valid for ttl. addr
// is the client's address (the host of the request's RemoteAddr), for rate
// limiting. A wrong login is an error wrapping auth.ErrBadLogin; a refused
// attempt is an error wrapping Config.RateLimited or one that has a
// RetryAfter() time.Duration method.
type LoginFunc func(ctx context.Context, user, password, addr string, ttl time.Duration) (token string, t store.Token, err error)

// IssueTokenFunc issues an access token for user, labelled name ("" allowed),
// valid for ttl, and returns the secret (shown once) with its stored record.
type IssueTokenFunc func(ctx context.Context, user, name string, ttl time.Duration) (secret string, t store.Token, err error)

// Revoker revokes an access token. The gateway's implementation also ends
// the live sessions the token opened. An unknown id is an error wrapping
// store.ErrNotFound.
type Revoker interface {
	RevokeToken(ctx context.Context, id string) error
}

// Killer ends a live session (engine.Sessions satisfies it): false when the
// session is not live on this gateway.
type Killer interface {
	End(id string, cause error) bool
}

// Decider decides a pending review (control/review). approve false rejects;
// grant is the length of an approved session grant (0: the decider's
// default). A review that is no longer pending is an error wrapping
// store.ErrConflict, an unknown one store.ErrNotFound; an *engine.Error with
// CodeDenied (e.g. deciding one's own request) is answered 403 with its
// message.
type Decider interface {
	Decide(ctx context.Context, id int64, approve bool, decider, note string, grant time.Duration) (store.Review, error)
}

// Recordings reads and verifies session recordings (control/recording over
// the blob store and the manifest). Both return an error wrapping
// recording.ErrNoRecording (or store.ErrNotFound) when the session has no
// recording. Read writes the verified frames to w and returns nil,
// recording.ErrIncomplete (no end marker yet) or the error that stopped it
// (recording.ErrCorrupt names the first bad chunk). Verify returns the
// report: a recording.Report (or *recording.Report) is served in the
// documented JSON shape, anything else as its own JSON.
type Recordings interface {
	Read(ctx context.Context, sessionID string, w io.Writer) error
	Verify(ctx context.Context, sessionID string) (any, error)
}

// Redeliverer makes one attempt to deliver a dead letter again
// (webhook.Dispatcher.Redeliver behind an adapter); nil means delivered, and
// the API then deletes the dead letter.
type Redeliverer interface {
	Redeliver(ctx context.Context, d store.DeadLetter) error
}

// Config configures a Server. The fields after Logger are services built
// elsewhere; each is optional (nil means the fallback named on it, or 501
// Not Implemented on the routes that need it).
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

	// Login serves POST /login. nil: auth.Service.Login (no rate limit; addr
	// unused).
	Login LoginFunc
	// RateLimited is the sentinel a Login error wraps when the attempt was
	// refused for its rate: answered 429 with Retry-After (DefaultRetryAfter
	// unless the error has a RetryAfter() time.Duration method).
	RateLimited error
	// IssueToken serves POST /users/{name}/tokens. nil: a token is made here
	// and stored with Store.CreateToken.
	IssueToken IssueTokenFunc
	// Revoker serves DELETE /tokens/{id}. nil: Store.RevokeToken, which does
	// not end the sessions the token opened.
	Revoker Revoker
	// HoursValidator checks an access rule's "hours" spec. nil: any string.
	HoursValidator func(string) error
	// Killer serves POST /sessions/{id}/kill. nil: 501.
	Killer Killer
	// Decider serves POST /reviews/{id}/approve and .../reject. nil: 501.
	Decider Decider
	// Recordings serves GET /sessions/{id}/recording and .../verify. nil: 501.
	Recordings Recordings
	// Redeliverer serves POST /dead-letters/{id}/redeliver. nil: 501.
	Redeliverer Redeliverer
	// WebhookAllowHTTP accepts http:// webhook URLs to loopback hosts (as
	// webhook.Config.AllowHTTP); otherwise only https:// is accepted.
	WebhookAllowHTTP bool
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
	LoginTTL          = 12 * time.Hour
	DefaultTokenTTL   = 8 * time.Hour
	MaxTokenTTL       = 10 * 365 * 24 * time.Hour
	MaxBodyBytes      = 1 << 20
	DefaultSessions   = 100
	MaxSessions       = 10000
	DefaultList       = 100   // reviews, dead letters
	MaxList           = 10000 // reviews, dead letters
	DefaultStatements = 1000
	MaxStatements     = 10000
	MaxReviewGrant    = 30 * 24 * time.Hour
	// DefaultRetryAfter is the Retry-After of a rate-limited login whose
	// error does not say how long to wait.
	DefaultRetryAfter = time.Minute
	// AdminGroup is the group whose members may use admin routes.
	AdminGroup = auth.AdminGroup
)

// Server serves the REST API. Its routes are the table in routes.go and are
// documented in docs/openapi.yaml (served at GET /api/v1/openapi.yaml).
type Server struct {
	cfg    Config
	st     store.Store
	auth   *auth.Service
	now    func() time.Time
	log    *slog.Logger
	mux    *http.ServeMux
	routes []route
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
	if s.cfg.Login == nil {
		s.cfg.Login = func(ctx context.Context, user, password, _ string, ttl time.Duration) (string, store.Token, error) {
			return s.auth.Login(ctx, user, password, ttl)
		}
	}
	if s.cfg.IssueToken == nil {
		s.cfg.IssueToken = s.issueToken
	}
	if s.cfg.Revoker == nil {
		s.cfg.Revoker = cfg.Store
	}
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		s.mux.Handle(rt.Method+" "+rt.Path, s.wrap(rt))
	}
	return s, nil
}

type noAgents struct{}

func (noAgents) Online(string) bool { return false }
func (noAgents) Disconnect(string)  {}

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
