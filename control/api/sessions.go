package api

import (
	"net/http"
	"strconv"
	"time"
)

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
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	limit := DefaultSessions
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > MaxSessions {
			writeError(w, http.StatusBadRequest, "limit must be an integer from 1 to "+strconv.Itoa(MaxSessions))
			return
		}
		limit = n
	}
	list, err := s.st.ListSessions(r.Context(), limit)
	if err != nil {
		s.internal(w, r, "list sessions", err)
		return
	}
	out := make([]sessionJSON, 0, len(list))
	for _, x := range list {
		j := sessionJSON{ID: x.ID, User: x.User, Connection: x.Connection, Protocol: x.Protocol, ClientAddr: x.ClientAddr,
			Start: x.Start, BytesIn: x.BytesIn, BytesOut: x.BytesOut, Outcome: x.Outcome, Error: x.Error,
			Denials: x.Denials, LastDenial: x.LastDenial}
		if !x.End.IsZero() {
			end := x.End
			j.End = &end
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, out)
}
