package api

import (
	"errors"
	"net/http"
	"slices"
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
	tok, rec, err := s.auth.Login(r.Context(), req.User, req.Password, LoginTTL)
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
	TTL string `json:"ttl"`
}

type tokenJSON struct {
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	User      string    `json:"user"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if id := identity(r); id.User != name && !isAdmin(id) {
		writeError(w, http.StatusForbidden, "admin access required to issue tokens for other users")
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
	if _, err := s.st.GetUser(r.Context(), name); err != nil {
		s.storeErr(w, r, "user", err)
		return
	}
	tok, rec, err := s.auth.IssueToken(r.Context(), name, ttl)
	if err != nil {
		s.internal(w, r, "issue token", err)
		return
	}
	s.log.Info("api: token issued", "user", name, "token_id", rec.ID, "by", identity(r).User)
	writeJSON(w, http.StatusOK, tokenJSON{ID: rec.ID, Token: tok, User: name, ExpiresAt: rec.ExpiresAt})
}
