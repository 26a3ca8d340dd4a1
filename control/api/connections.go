package api

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
)

type connectionJSON struct {
	Name   string `json:"name"`
	Agent  string `json:"agent"`
	Type   string `json:"type"`
	Online bool   `json:"online"`
	Target string `json:"target,omitempty"` // admins only, redacted
	// The data-plane policy is not secret: every user sees it.
	Guardrails *engine.GuardrailPolicy `json:"guardrails,omitempty"`
	Masking    *engine.MaskingPolicy   `json:"masking,omitempty"`
}

func (s *Server) toConnJSON(c store.Connection, admin bool) connectionJSON {
	j := connectionJSON{Name: c.Name, Agent: c.Agent, Type: c.Type, Online: s.cfg.Agents.Online(c.Agent),
		Guardrails: c.Policy.Guardrails, Masking: c.Policy.Masking}
	if admin {
		j.Target = RedactTarget(c.Target)
	}
	return j
}

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request) {
	conns, err := s.st.ListConnections(r.Context())
	if err != nil {
		s.internal(w, r, "list connections", err)
		return
	}
	admin := isAdmin(identity(r))
	out := make([]connectionJSON, 0, len(conns))
	for _, c := range conns {
		out = append(out, s.toConnJSON(c, admin))
	}
	writeJSON(w, http.StatusOK, out)
}

// putConnReq is the body of PUT /connections/{name}. PUT replaces the whole
// connection: an omitted guardrails or masking block removes it.
type putConnReq struct {
	Agent      string                  `json:"agent"`
	Type       string                  `json:"type"`
	Target     string                  `json:"target"`
	Guardrails *engine.GuardrailPolicy `json:"guardrails,omitempty"`
	Masking    *engine.MaskingPolicy   `json:"masking,omitempty"`
}

// Connection types the gateway can serve.
var connTypes = map[string]bool{"postgres": true, "mysql": true}

func (s *Server) putConnection(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !validName(w, objectName, "connection", name) {
		return
	}
	var req putConnReq
	if !decode(w, r, &req, false) {
		return
	}
	if req.Type == "" {
		req.Type = "postgres"
	}
	switch {
	case req.Agent == "":
		writeError(w, http.StatusBadRequest, "agent is required")
		return
	case req.Target == "":
		writeError(w, http.StatusBadRequest, "target is required")
		return
	case !connTypes[req.Type]:
		writeError(w, http.StatusBadRequest, "unsupported connection type "+quote(req.Type))
		return
	}
	policy := engine.Policy{Guardrails: req.Guardrails, Masking: req.Masking}
	if err := ValidatePolicy(&policy); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, err := s.st.GetAgent(r.Context(), req.Agent); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusBadRequest, "agent "+quote(req.Agent)+" does not exist")
			return
		}
		s.internal(w, r, "get agent", err)
		return
	}
	now := s.now().UTC()
	c := store.Connection{Name: name, Agent: req.Agent, Type: req.Type, Target: req.Target, Policy: policy, CreatedAt: now, UpdatedAt: now}
	if err := s.st.PutConnection(r.Context(), c); err != nil {
		s.internal(w, r, "put connection", err)
		return
	}
	s.log.Info("api: connection saved", "connection", name, "agent", req.Agent, "by", identity(r).User)
	writeJSON(w, http.StatusOK, s.toConnJSON(c, true))
}

func (s *Server) deleteConnection(w http.ResponseWriter, r *http.Request) {
	if err := s.st.DeleteConnection(r.Context(), r.PathValue("name")); err != nil {
		s.storeErr(w, r, "connection", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

const redacted = "xxxxx"

// kvPassword matches password settings in libpq keyword/value strings.
var kvPassword = regexp.MustCompile(`(?i)(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// RedactTarget hides passwords in a target: the URL userinfo password, any
// password/sslpassword query parameter, and password= in keyword/value form.
func RedactTarget(target string) string {
	if u, err := url.Parse(target); err == nil && u.Scheme != "" && u.Host != "" {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), redacted)
		}
		q := u.Query()
		changed := false
		for k := range q {
			if k == "password" || k == "sslpassword" {
				q.Set(k, redacted)
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return kvPassword.ReplaceAllString(target, "${1}"+redacted)
}

func quote(s string) string { return strconv.Quote(s) }
