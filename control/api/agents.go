package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/sluice-gw/sluice/control/auth"
	"github.com/sluice-gw/sluice/control/store"
)

type agentJSON struct {
	Name      string    `json:"name"`
	Online    bool      `json:"online"`
	CreatedAt time.Time `json:"created_at"`
}

// agentKeyJSON is the only place an agent key is ever shown.
type agentKeyJSON struct {
	Name string `json:"name,omitempty"`
	Key  string `json:"key,omitempty"`
	DSN  string `json:"dsn,omitempty"`
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) {
	agents, err := s.st.ListAgents(r.Context())
	if err != nil {
		s.internal(w, r, "list agents", err)
		return
	}
	out := make([]agentJSON, 0, len(agents))
	for _, a := range agents {
		out = append(out, agentJSON{Name: a.Name, Online: s.cfg.Agents.Online(a.Name), CreatedAt: a.CreatedAt})
	}
	writeJSON(w, http.StatusOK, out)
}

// DSN returns the key DSN an agent uses to dial the tunnel over gRPC.
func (s *Server) DSN(name, key string) string { return s.dsnFor(name, key, "grpc") }

// dsnFor returns the DSN for transport "grpc" (the default) or "quic" (UDP
// on the same port, always TLS 1.3 with the CA pinned).
func (s *Server) dsnFor(name, key, transport string) string {
	if transport == "quic" {
		return "quic://" + name + ":" + key + "@" + s.cfg.TunnelAddr + "?mode=standard&ca=" + s.cfg.CAFingerprint
	}
	if s.cfg.TunnelTLS {
		return "grpcs://" + name + ":" + key + "@" + s.cfg.TunnelAddr + "?mode=standard&ca=" + s.cfg.CAFingerprint
	}
	return "grpc://" + name + ":" + key + "@" + s.cfg.TunnelAddr + "?mode=standard"
}

// setKey gives agent name a fresh key (creating it if needed) and returns it.
func (s *Server) setKey(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	key, hash, err := auth.NewAgentKey()
	if err != nil {
		s.internal(w, r, "agent key", err)
		return "", false
	}
	if err := s.st.PutAgent(r.Context(), store.Agent{Name: name, KeyHash: hash, CreatedAt: s.now().UTC()}); err != nil {
		s.internal(w, r, "put agent", err)
		return "", false
	}
	return key, true
}

type postAgentReq struct {
	Name string `json:"name"`
	// Transport picks the DSN scheme: "grpc" (default) or "quic".
	Transport string `json:"transport,omitempty"`
}

// postAgent creates an agent or rotates its key; rotating drops the tunnel
// that used the old key.
func (s *Server) postAgent(w http.ResponseWriter, r *http.Request) {
	var req postAgentReq
	if !decode(w, r, &req, false) {
		return
	}
	if req.Transport != "" && req.Transport != "grpc" && req.Transport != "quic" {
		writeError(w, http.StatusBadRequest, "transport must be grpc or quic")
		return
	}
	if !validName(w, objectName, "agent", req.Name) {
		return
	}
	_, err := s.st.GetAgent(r.Context(), req.Name)
	existed := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.internal(w, r, "get agent", err)
		return
	}
	key, ok := s.setKey(w, r, req.Name)
	if !ok {
		return
	}
	if existed {
		s.cfg.Agents.Disconnect(req.Name)
		s.log.Info("api: agent key rotated", "agent", req.Name, "by", identity(r).User)
	} else {
		s.log.Info("api: agent created", "agent", req.Name, "by", identity(r).User)
	}
	writeJSON(w, http.StatusOK, agentKeyJSON{Name: req.Name, Key: key, DSN: s.dsnFor(req.Name, key, req.Transport)})
}

type putAgentReq struct{}

// putAgent is an idempotent create: a new agent gets a key, an existing one
// is left alone.
func (s *Server) putAgent(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !validName(w, objectName, "agent", name) {
		return
	}
	var req putAgentReq
	if !decode(w, r, &req, true) {
		return
	}
	_, err := s.st.GetAgent(r.Context(), name)
	if err == nil {
		writeJSON(w, http.StatusOK, agentKeyJSON{Name: name})
		return
	}
	if !errors.Is(err, store.ErrNotFound) {
		s.internal(w, r, "get agent", err)
		return
	}
	key, ok := s.setKey(w, r, name)
	if !ok {
		return
	}
	s.log.Info("api: agent created", "agent", name, "by", identity(r).User)
	writeJSON(w, http.StatusOK, agentKeyJSON{Name: name, Key: key, DSN: s.DSN(name, key)})
}

func (s *Server) deleteAgent(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.st.DeleteAgent(r.Context(), name); err != nil {
		s.storeErr(w, r, "agent", err)
		return
	}
	s.cfg.Agents.Disconnect(name)
	s.log.Info("api: agent deleted", "agent", name, "by", identity(r).User)
	w.WriteHeader(http.StatusNoContent)
}
