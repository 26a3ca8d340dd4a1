package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/sluice-gw/sluice/control/auth"
	"github.com/sluice-gw/sluice/control/store"
)

type loginReq struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

type loginJSON struct {
	Token     string    `json:"token"`
	User      string    `json:"user"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req loginReq
	if !decode(w, r, &req, false) {
		return
	}
	tok, rec, err := s.cfg.Login(r.Context(), req.User, req.Password, clientHost(r), LoginTTL)
	if wait, limited := s.rateLimited(err); limited {
		secs := int64(math.Ceil(wait.Seconds()))
		if secs < 1 {
			secs = 1
		}
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		s.log.Warn("api: login rate limited", "user", req.User, "addr", clientHost(r), "retry_after_s", secs)
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many login attempts: try again in %d seconds", secs))
		return
	}
	if errors.Is(err, auth.ErrBadLogin) {
		writeError(w, http.StatusUnauthorized, "invalid user or password")
		return
	}
	if err != nil {
		s.internal(w, r, "login", err)
		return
	}
	s.log.Info("api: login", "user", rec.UserName, "token_id", rec.ID)
	writeJSON(w, http.StatusOK, loginJSON{Token: tok, User: rec.UserName, ExpiresAt: rec.ExpiresAt})
}

// rateLimited reports whether a login error is a refusal for rate, and how
// long the client should wait.
func (s *Server) rateLimited(err error) (time.Duration, bool) {
	if err == nil {
		return 0, false
	}
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return ra.RetryAfter(), true
	}
	if s.cfg.RateLimited != nil && errors.Is(err, s.cfg.RateLimited) {
		return DefaultRetryAfter, true
	}
	return 0, false
}

// clientHost is the host part of the request's remote address.
func clientHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

type userJSON struct {
	Name        string    `json:"name"`
	Groups      []string  `json:"groups"`
	HasPassword bool      `json:"has_password"`
	CreatedAt   time.Time `json:"created_at"`
}

func toUserJSON(u store.User) userJSON {
	return userJSON{Name: u.Name, Groups: nonNil(u.Groups), HasPassword: u.PasswordHash != "", CreatedAt: u.CreatedAt}
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	users, err := s.st.ListUsers(r.Context())
	if err != nil {
		s.internal(w, r, "list users", err)
		return
	}
	out := make([]userJSON, 0, len(users))
	for _, u := range users {
		out = append(out, toUserJSON(u))
	}
	writeJSON(w, http.StatusOK, out)
}

// putUserReq: absent fields keep their stored value (or are empty for a new
// user); "password": "" removes the password.
type putUserReq struct {
	Password *string   `json:"password"`
	Groups   *[]string `json:"groups"`
}

func (s *Server) putUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !validName(w, userName, "user", name) {
		return
	}
	var req putUserReq
	if !decode(w, r, &req, true) {
		return
	}
	u, err := s.st.GetUser(r.Context(), name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		u = store.User{Name: name, Groups: []string{}, CreatedAt: s.now().UTC()}
	case err != nil:
		s.internal(w, r, "get user", err)
		return
	}
	if req.Groups != nil {
		groups := []string{}
		for _, g := range *req.Groups {
			if !objectName.MatchString(g) {
				writeError(w, http.StatusBadRequest, "invalid group name "+quote(g))
				return
			}
			if !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
		u.Groups = groups
	}
	if req.Password != nil {
		u.PasswordHash = ""
		if *req.Password != "" {
			if len(*req.Password) > 72 {
				writeError(w, http.StatusBadRequest, "password longer than 72 bytes")
				return
			}
			h, err := auth.HashPassword(*req.Password)
			if err != nil {
				s.internal(w, r, "hash password", err)
				return
			}
			u.PasswordHash = h
		}
	}
	if err := s.st.PutUser(r.Context(), u); err != nil {
		s.internal(w, r, "put user", err)
		return
	}
	// Re-read so CreatedAt is the stored one on update.
	if u, err = s.st.GetUser(r.Context(), name); err != nil {
		s.internal(w, r, "get user", err)
		return
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	if err := s.st.DeleteUser(r.Context(), r.PathValue("name")); err != nil {
		s.storeErr(w, r, "user", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type tokenReq struct {
	TTL  string `json:"ttl"`
	Name string `json:"name"`
}

type tokenJSON struct {
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	User      string    `json:"user"`
	Name      string    `json:"name,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// MaxTokenName bounds a token's label.
const MaxTokenName = 128

// selfOrAdmin answers 403 unless the caller is user name or an admin.
func selfOrAdmin(w http.ResponseWriter, r *http.Request, name, msg string) bool {
	if id := identity(r); id.User != name && !isAdmin(id) {
		writeError(w, http.StatusForbidden, msg)
		return false
	}
	return true
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !selfOrAdmin(w, r, name, "admin access required to issue tokens for other users") {
		return
	}
	var req tokenReq
	if !decode(w, r, &req, true) {
		return
	}
	ttl := DefaultTokenTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > MaxTokenTTL {
			writeError(w, http.StatusBadRequest, "ttl must be a positive Go duration up to "+MaxTokenTTL.String())
			return
		}
		ttl = d
	}
	if err := checkText("name", req.Name, MaxTokenName, false); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, err := s.st.GetUser(r.Context(), name); err != nil {
		s.storeErr(w, r, "user", err)
		return
	}
	tok, rec, err := s.cfg.IssueToken(r.Context(), name, req.Name, ttl)
	if err != nil {
		s.internal(w, r, "issue token", err)
		return
	}
	s.log.Info("api: token issued", "user", name, "token_id", rec.ID, "by", identity(r).User)
	writeJSON(w, http.StatusOK, tokenJSON{ID: rec.ID, Token: tok, User: name, Name: rec.Name, ExpiresAt: rec.ExpiresAt})
}

// issueToken is the IssueToken fallback: auth.Service.IssueToken with a
// label.
func (s *Server) issueToken(ctx context.Context, user, name string, ttl time.Duration) (string, store.Token, error) {
	secret, err := auth.NewToken()
	if err != nil {
		return "", store.Token{}, fmt.Errorf("issue token for %s: %w", user, err)
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", store.Token{}, fmt.Errorf("issue token for %s: %w", user, err)
	}
	now := s.now().UTC()
	t := store.Token{ID: hex.EncodeToString(b[:]), UserName: user, Name: name, Hash: auth.Hash(secret),
		ExpiresAt: now.Add(ttl), CreatedAt: now}
	if err := s.st.CreateToken(ctx, t); err != nil {
		return "", store.Token{}, fmt.Errorf("issue token for %s: %w", user, err)
	}
	return secret, t, nil
}

// tokenInfoJSON describes a token; the secret is never shown again.
type tokenInfoJSON struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Revoked   bool      `json:"revoked"`
	Expired   bool      `json:"expired"`
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !selfOrAdmin(w, r, name, "admin access required to list other users' tokens") {
		return
	}
	if _, err := s.st.GetUser(r.Context(), name); err != nil {
		s.storeErr(w, r, "user", err)
		return
	}
	list, err := s.st.ListTokens(r.Context(), name)
	if err != nil {
		s.internal(w, r, "list tokens", err)
		return
	}
	now := s.now()
	out := make([]tokenInfoJSON, 0, len(list))
	for _, t := range list {
		out = append(out, tokenInfoJSON{ID: t.ID, User: t.UserName, Name: t.Name, CreatedAt: t.CreatedAt,
			ExpiresAt: t.ExpiresAt, Revoked: t.Revoked, Expired: !now.Before(t.ExpiresAt)})
	}
	writeJSON(w, http.StatusOK, out)
}

// revokeToken revokes a token of the caller (any user) or of anyone (admin).
// A non-admin naming another user's token gets 404, as for an unknown one.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	tid := r.PathValue("id")
	caller := identity(r)
	if !isAdmin(caller) {
		mine, err := s.st.ListTokens(r.Context(), caller.User)
		if err != nil {
			s.internal(w, r, "list tokens", err)
			return
		}
		if !slices.ContainsFunc(mine, func(t store.Token) bool { return t.ID == tid }) {
			writeError(w, http.StatusNotFound, "token not found")
			return
		}
	}
	if err := s.cfg.Revoker.RevokeToken(r.Context(), tid); err != nil {
		s.storeErr(w, r, "token", err)
		return
	}
	s.log.Info("api: token revoked", "token_id", tid, "by", caller.User)
	w.WriteHeader(http.StatusNoContent)
}
