package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/sluice-gw/sluice/control/recording"
	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
)

// Who sees sessions: an admin sees every session; any other user sees only
// their own (list, get, statements). Someone else's session answers 404, as
// an unknown one does. Recordings, their verification and kill are admin
// only.

type sessionJSON struct {
	ID         string     `json:"id"`
	User       string     `json:"user"`
	Connection string     `json:"connection"`
	Protocol   string     `json:"protocol"`
	ClientAddr string     `json:"client_addr"`
	Start      time.Time  `json:"start"`
	End        *time.Time `json:"end"` // null while running
	BytesIn    int64      `json:"bytes_in"`
	BytesOut   int64      `json:"bytes_out"`
	Denials    int64      `json:"denials"`
	LastDenial string     `json:"last_denial,omitempty"`
	Outcome    string     `json:"outcome"`
	Error      string     `json:"error"`
	TokenID    string     `json:"token_id,omitempty"`
	Rule       string     `json:"rule,omitempty"`
}

func toSessionJSON(x store.Session) sessionJSON {
	return sessionJSON{ID: x.ID, User: x.User, Connection: x.Connection, Protocol: x.Protocol, ClientAddr: x.ClientAddr,
		Start: x.Start, End: timePtr(x.End), BytesIn: x.BytesIn, BytesOut: x.BytesOut, Outcome: x.Outcome, Error: x.Error,
		Denials: x.Denials, LastDenial: x.LastDenial, TokenID: x.TokenID, Rule: x.Rule}
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f store.SessionFilter
	var ok bool
	if f.Limit, ok = queryLimit(w, q, DefaultSessions, MaxSessions); !ok {
		return
	}
	if f.User, ok = queryName(w, q, "user", userName); !ok {
		return
	}
	if f.Connection, ok = queryName(w, q, "connection", objectName); !ok {
		return
	}
	if f.Outcome, ok = queryName(w, q, "outcome", outcomeName); !ok {
		return
	}
	if f.Since, ok = queryTime(w, q, "since"); !ok {
		return
	}
	if f.Until, ok = queryTime(w, q, "until"); !ok {
		return
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		writeError(w, http.StatusBadRequest, "since must be before until")
		return
	}
	if id := identity(r); !isAdmin(id) {
		if f.User != "" && f.User != id.User {
			writeError(w, http.StatusForbidden, "admin access required to list other users' sessions")
			return
		}
		f.User = id.User
	}
	list, err := s.st.QuerySessions(r.Context(), f)
	if err != nil {
		s.internal(w, r, "list sessions", err)
		return
	}
	out := make([]sessionJSON, 0, len(list))
	for _, x := range list {
		out = append(out, toSessionJSON(x))
	}
	writeJSON(w, http.StatusOK, out)
}

// sessionID returns the {id} path value, answering 400 for a malformed one.
func sessionID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !sessionIDName.MatchString(id) {
		writeError(w, http.StatusBadRequest, "invalid session id "+quote(id))
		return "", false
	}
	return id, true
}

// visibleSession returns the session if the caller may see it; otherwise it
// answers 404 (an unknown session, or another user's for a non-admin).
func (s *Server) visibleSession(w http.ResponseWriter, r *http.Request, id string) (store.Session, bool) {
	x, err := s.st.GetSession(r.Context(), id)
	if err == nil && !isAdmin(identity(r)) && x.User != identity(r).User {
		err = store.ErrNotFound
	}
	if err != nil {
		s.storeErr(w, r, "session", err)
		return store.Session{}, false
	}
	return x, true
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	id, ok := sessionID(w, r)
	if !ok {
		return
	}
	x, ok := s.visibleSession(w, r, id)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, toSessionJSON(x))
}

type statementJSON struct {
	SessionID  string    `json:"session_id"`
	Seq        int64     `json:"seq"`
	At         time.Time `json:"at"`
	DurationMS float64   `json:"duration_ms"`
	Text       string    `json:"text"`
	Params     string    `json:"params"`
	Rows       int64     `json:"rows"`
	Outcome    string    `json:"outcome"`
	Error      string    `json:"error"`
	Rule       string    `json:"rule"`
}

func (s *Server) listStatements(w http.ResponseWriter, r *http.Request) {
	id, ok := sessionID(w, r)
	if !ok {
		return
	}
	limit, ok := queryLimit(w, r.URL.Query(), DefaultStatements, MaxStatements)
	if !ok {
		return
	}
	// Statements may be written before their session's record: an admin
	// gets them anyway; a user must own the recorded session.
	known := true
	if isAdmin(identity(r)) {
		_, err := s.st.GetSession(r.Context(), id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.internal(w, r, "get session", err)
			return
		}
		known = err == nil
	} else if _, ok := s.visibleSession(w, r, id); !ok {
		return
	}
	list, err := s.st.ListStatements(r.Context(), id, limit)
	if err != nil {
		s.internal(w, r, "list statements", err)
		return
	}
	if !known && len(list) == 0 {
		writeError(w, http.StatusNotFound, "session not found")
		return
	}
	out := make([]statementJSON, 0, len(list))
	for _, x := range list {
		out = append(out, statementJSON{SessionID: x.SessionID, Seq: x.Seq, At: x.At,
			DurationMS: float64(x.Duration) / float64(time.Millisecond), Text: x.Text, Params: x.Params,
			Rows: x.Rows, Outcome: x.Outcome, Error: x.Error, Rule: x.Rule})
	}
	writeJSON(w, http.StatusOK, out)
}

// Trailers of GET /sessions/{id}/recording: how the stream ended.
const (
	// TrailerRecordingStatus is "complete", "incomplete" (no end marker:
	// the session is open or the tail is missing) or "error" (the stream
	// stopped early: see TrailerRecordingError).
	TrailerRecordingStatus = "Sluice-Recording-Status"
	TrailerRecordingError  = "Sluice-Recording-Error"
)

// countingWriter remembers whether anything was written, so a failure
// before the first byte can still get an error status.
type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.n == 0 && len(p) > 0 {
		c.w.Header().Set("Content-Type", "application/octet-stream")
		c.w.WriteHeader(http.StatusOK)
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func noRecording(err error) bool {
	return errors.Is(err, recording.ErrNoRecording) || errors.Is(err, store.ErrNotFound)
}

func (s *Server) getRecording(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Recordings == nil {
		notImplemented(w, "session recordings")
		return
	}
	id, ok := sessionID(w, r)
	if !ok {
		return
	}
	h := w.Header()
	h.Set("Trailer", TrailerRecordingStatus+", "+TrailerRecordingError)
	h.Set("Content-Disposition", `attachment; filename="`+id+`.rec"`)
	cw := &countingWriter{w: w}
	err := s.cfg.Recordings.Read(r.Context(), id, cw)
	if cw.n == 0 && err != nil && !errors.Is(err, recording.ErrIncomplete) {
		h.Del("Trailer")
		h.Del("Content-Disposition")
		switch {
		case noRecording(err):
			writeError(w, http.StatusNotFound, "no recording for session "+id)
		case errors.Is(err, recording.ErrCorrupt):
			s.log.Error("api: recording corrupt", "session", id, "err", err)
			writeError(w, http.StatusInternalServerError, "the recording is corrupt ("+err.Error()+"): run `sluice admin audit verify "+id+"`")
		default:
			s.internal(w, r, "read recording", err)
		}
		return
	}
	if cw.n == 0 {
		h.Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
	}
	switch {
	case err == nil:
		h.Set(TrailerRecordingStatus, "complete")
	case errors.Is(err, recording.ErrIncomplete):
		h.Set(TrailerRecordingStatus, "incomplete")
	default:
		s.log.Error("api: recording stream stopped", "session", id, "bytes", cw.n, "err", err)
		h.Set(TrailerRecordingStatus, "error")
		msg := "internal error"
		if errors.Is(err, recording.ErrCorrupt) {
			msg = err.Error()
		}
		h.Set(TrailerRecordingError, msg)
	}
}

// verifyJSON is the report of GET /sessions/{id}/verify.
type verifyJSON struct {
	SessionID   string        `json:"session_id"`
	Result      string        `json:"result"` // "ok", "corrupt" or "incomplete"
	Intact      bool          `json:"intact"`
	Complete    bool          `json:"complete"`
	Chunks      int           `json:"chunks"`
	Bytes       int64         `json:"bytes"`
	ClientBytes int64         `json:"client_bytes"`
	ServerBytes int64         `json:"server_bytes"`
	First       *time.Time    `json:"first"`
	Last        *time.Time    `json:"last"`
	EndReason   string        `json:"end_reason"`
	Head        string        `json:"head"`
	Problems    []problemJSON `json:"problems"`
}

type problemJSON struct {
	Kind    string `json:"kind"`
	Seq     int64  `json:"seq"`
	Through int64  `json:"through"`
	Key     string `json:"key"`
	Detail  string `json:"detail"`
	Text    string `json:"text"` // the whole problem, for people
}

func toVerifyJSON(rep recording.Report) verifyJSON {
	v := verifyJSON{SessionID: rep.SessionID, Intact: rep.Intact(), Complete: rep.Complete, Chunks: rep.Chunks,
		Bytes: rep.Bytes, ClientBytes: rep.ClientBytes, ServerBytes: rep.ServerBytes,
		First: timePtr(rep.First.UTC()), Last: timePtr(rep.Last.UTC()), EndReason: rep.EndReason, Head: rep.Head,
		Problems: []problemJSON{}}
	for _, p := range rep.Problems {
		v.Problems = append(v.Problems, problemJSON{Kind: string(p.Kind), Seq: p.Seq, Through: p.Through, Key: p.Key,
			Detail: p.Detail, Text: p.String()})
	}
	switch {
	case !v.Intact:
		v.Result = "corrupt"
	case !v.Complete:
		v.Result = "incomplete"
	default:
		v.Result = "ok"
	}
	return v
}

func (s *Server) verifyRecording(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Recordings == nil {
		notImplemented(w, "session recordings")
		return
	}
	id, ok := sessionID(w, r)
	if !ok {
		return
	}
	rep, err := s.cfg.Recordings.Verify(r.Context(), id)
	switch {
	case noRecording(err):
		writeError(w, http.StatusNotFound, "no recording for session "+id)
		return
	case err != nil:
		s.internal(w, r, "verify recording", err)
		return
	}
	switch x := rep.(type) {
	case recording.Report:
		writeJSON(w, http.StatusOK, toVerifyJSON(x))
	case *recording.Report:
		writeJSON(w, http.StatusOK, toVerifyJSON(*x))
	default:
		writeJSON(w, http.StatusOK, rep)
	}
}

type emptyReq struct{}

// killSession ends a live session on this gateway.
func (s *Server) killSession(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Killer == nil {
		notImplemented(w, "ending sessions")
		return
	}
	id, ok := sessionID(w, r)
	if !ok {
		return
	}
	if !decode(w, r, &emptyReq{}, true) {
		return
	}
	if s.cfg.Killer.End(id, engine.Errorf(engine.CodeSessionEnded, "session ended by an administrator")) {
		s.log.Info("api: session killed", "session", id, "by", identity(r).User)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	x, err := s.st.GetSession(r.Context(), id)
	if err != nil {
		s.storeErr(w, r, "session", err)
		return
	}
	writeError(w, http.StatusConflict, "session "+id+" is not running on this gateway (outcome "+quote(x.Outcome)+")")
}

// notImplemented answers 501 for a feature whose service is not wired.
func notImplemented(w http.ResponseWriter, what string) {
	writeError(w, http.StatusNotImplemented, what+": not available on this gateway")
}
