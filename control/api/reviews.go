package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
)

// Who sees reviews: an admin sees every review and decides them; any other
// user sees only the reviews they requested (someone else's answers 404).

// MaxReviewNote bounds a decision note.
const MaxReviewNote = 4096

type reviewJSON struct {
	ID            int64      `json:"id"`
	Kind          string     `json:"kind"`
	User          string     `json:"user"`
	Connection    string     `json:"connection"`
	SessionID     string     `json:"session_id"`
	Statement     string     `json:"statement,omitempty"`
	StatementHash string     `json:"statement_hash,omitempty"`
	Reason        string     `json:"reason"`
	Status        string     `json:"status"`
	Decider       string     `json:"decider,omitempty"`
	DecisionNote  string     `json:"decision_note,omitempty"`
	GrantUntil    *time.Time `json:"grant_until"`
	CreatedAt     time.Time  `json:"created_at"`
	DecidedAt     *time.Time `json:"decided_at"`
}

func toReviewJSON(x store.Review) reviewJSON {
	return reviewJSON{ID: x.ID, Kind: x.Kind, User: x.User, Connection: x.Connection, SessionID: x.SessionID,
		Statement: x.Statement, StatementHash: x.StatementHash, Reason: x.Reason, Status: x.Status, Decider: x.Decider,
		DecisionNote: x.DecisionNote, GrantUntil: timePtr(x.GrantUntil), CreatedAt: x.CreatedAt, DecidedAt: timePtr(x.DecidedAt)}
}

var (
	reviewStatuses = []string{store.ReviewPending, store.ReviewApproved, store.ReviewRejected, store.ReviewExpired}
	reviewKinds    = []string{store.ReviewSession, store.ReviewStatement}
)

func (s *Server) listReviews(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f store.ReviewFilter
	var ok bool
	if f.Status, ok = queryEnum(w, q, "status", reviewStatuses...); !ok {
		return
	}
	if f.Kind, ok = queryEnum(w, q, "kind", reviewKinds...); !ok {
		return
	}
	if f.User, ok = queryName(w, q, "user", userName); !ok {
		return
	}
	if f.Connection, ok = queryName(w, q, "connection", objectName); !ok {
		return
	}
	if f.Limit, ok = queryLimit(w, q, DefaultList, MaxList); !ok {
		return
	}
	if id := identity(r); !isAdmin(id) {
		if f.User != "" && f.User != id.User {
			writeError(w, http.StatusForbidden, "admin access required to list other users' reviews")
			return
		}
		f.User = id.User
	}
	list, err := s.st.ListReviews(r.Context(), f)
	if err != nil {
		s.internal(w, r, "list reviews", err)
		return
	}
	out := make([]reviewJSON, 0, len(list))
	for _, x := range list {
		out = append(out, toReviewJSON(x))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getReview(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r, "review")
	if !ok {
		return
	}
	x, err := s.st.GetReview(r.Context(), id)
	if err == nil && !isAdmin(identity(r)) && x.User != identity(r).User {
		err = store.ErrNotFound
	}
	if err != nil {
		s.storeErr(w, r, "review", err)
		return
	}
	writeJSON(w, http.StatusOK, toReviewJSON(x))
}

type approveReq struct {
	Duration string `json:"duration"`
	Note     string `json:"note"`
}

type rejectReq struct {
	Note string `json:"note"`
}

func (s *Server) approveReview(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Decider == nil {
		notImplemented(w, "reviews")
		return
	}
	id, ok := parseID(w, r, "review")
	if !ok {
		return
	}
	var req approveReq
	if !decode(w, r, &req, true) {
		return
	}
	var grant time.Duration
	if req.Duration != "" {
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d <= 0 || d > MaxReviewGrant {
			writeError(w, http.StatusBadRequest, "duration must be a positive Go duration up to "+MaxReviewGrant.String()+", such as \"2h\"")
			return
		}
		grant = d
	}
	s.decide(w, r, id, true, req.Note, grant)
}

func (s *Server) rejectReview(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Decider == nil {
		notImplemented(w, "reviews")
		return
	}
	id, ok := parseID(w, r, "review")
	if !ok {
		return
	}
	var req rejectReq
	if !decode(w, r, &req, true) {
		return
	}
	s.decide(w, r, id, false, req.Note, 0)
}

func (s *Server) decide(w http.ResponseWriter, r *http.Request, id int64, approve bool, note string, grant time.Duration) {
	if err := checkText("note", note, MaxReviewNote, true); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	decider := identity(r).User
	x, err := s.cfg.Decider.Decide(r.Context(), id, approve, decider, note, grant)
	var ee *engine.Error
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "review not found")
		return
	case errors.Is(err, store.ErrConflict):
		msg := "review is no longer pending"
		if cur, gerr := s.st.GetReview(r.Context(), id); gerr == nil {
			msg = "review is already " + cur.Status
			if cur.Decider != "" {
				msg += " (by " + cur.Decider + ")"
			}
		}
		writeError(w, http.StatusConflict, msg+": only a pending review can be decided")
		return
	case errors.As(err, &ee) && ee.Code == engine.CodeDenied:
		writeError(w, http.StatusForbidden, ee.Message)
		return
	default:
		s.internal(w, r, "decide review", err)
		return
	}
	s.log.Info("api: review decided", "review", id, "status", x.Status, "by", decider)
	writeJSON(w, http.StatusOK, toReviewJSON(x))
}
