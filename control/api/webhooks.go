package api

import (
	"errors"
	"math"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/webhook"
)

// A webhook's secret is write-only: it is never returned. Its URL may carry a
// credential in its path (Slack's incoming webhooks do), so it is shown as
// scheme and host only, like the dispatcher's logs.

type webhookJSON struct {
	Name      string    `json:"name"`
	URL       string    `json:"url"` // scheme://host/… (the path is not shown)
	Format    string    `json:"format"`
	Events    []string  `json:"events"` // empty: every event
	HasSecret bool      `json:"has_secret"`
	CreatedAt time.Time `json:"created_at"`
}

// shownURL is raw without its path, query and fragment.
func shownURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	s := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		s += "/…"
	}
	return s
}

func toWebhookJSON(x store.Webhook) webhookJSON {
	format := x.Format
	if format == "" {
		format = store.WebhookJSON
	}
	return webhookJSON{Name: x.Name, URL: shownURL(x.URL), Format: format, Events: nonNil(x.Events),
		HasSecret: x.Secret != "", CreatedAt: x.CreatedAt}
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	list, err := s.st.ListWebhooks(r.Context())
	if err != nil {
		s.internal(w, r, "list webhooks", err)
		return
	}
	out := make([]webhookJSON, 0, len(list))
	for _, x := range list {
		out = append(out, toWebhookJSON(x))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request) {
	x, err := s.st.GetWebhook(r.Context(), r.PathValue("name"))
	if err != nil {
		s.storeErr(w, r, "webhook", err)
		return
	}
	writeJSON(w, http.StatusOK, toWebhookJSON(x))
}

// putWebhookReq replaces a webhook, except that an omitted url or secret
// keeps the stored one (both are write-only); "secret": "" removes it.
type putWebhookReq struct {
	URL    *string  `json:"url"`
	Secret *string  `json:"secret"`
	Format string   `json:"format"`
	Events []string `json:"events"`
}

func (s *Server) putWebhook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !validName(w, objectName, "webhook", name) {
		return
	}
	var req putWebhookReq
	if !decode(w, r, &req, false) {
		return
	}
	x, err := s.st.GetWebhook(r.Context(), name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if req.URL == nil {
			writeError(w, http.StatusBadRequest, "url is required for a new webhook")
			return
		}
		x = store.Webhook{Name: name, CreatedAt: s.now().UTC()}
	case err != nil:
		s.internal(w, r, "get webhook", err)
		return
	}
	if req.URL != nil {
		x.URL = *req.URL
	}
	if req.Secret != nil {
		x.Secret = *req.Secret
	}
	x.Format = req.Format
	if x.Format == "" {
		x.Format = store.WebhookJSON
	}
	x.Events = []string{}
	for _, e := range req.Events {
		if !slices.Contains(x.Events, e) {
			x.Events = append(x.Events, e)
		}
	}
	ep := webhook.Endpoint{Name: x.Name, URL: x.URL, Secret: x.Secret, Format: x.Format, Events: x.Events}
	if err := ep.Validate(s.cfg.WebhookAllowHTTP); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.st.PutWebhook(r.Context(), x); err != nil {
		s.internal(w, r, "put webhook", err)
		return
	}
	s.log.Info("api: webhook saved", "webhook", name, "by", identity(r).User)
	s.getWebhook(w, r)
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.st.DeleteWebhook(r.Context(), name); err != nil {
		s.storeErr(w, r, "webhook", err)
		return
	}
	s.log.Info("api: webhook deleted", "webhook", name, "by", identity(r).User)
	w.WriteHeader(http.StatusNoContent)
}

// Dead letters.

type deadLetterJSON struct {
	ID        int64     `json:"id"`
	Webhook   string    `json:"webhook"`
	Event     string    `json:"event"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	CreatedAt time.Time `json:"created_at"`
	Payload   string    `json:"payload"` // the body that failed
}

func (s *Server) writeDeadLetters(w http.ResponseWriter, r *http.Request, webhookName string, limit int) {
	list, err := s.st.ListDeadLetters(r.Context(), webhookName, limit)
	if err != nil {
		s.internal(w, r, "list dead letters", err)
		return
	}
	out := make([]deadLetterJSON, 0, len(list))
	for _, d := range list {
		out = append(out, deadLetterJSON{ID: d.ID, Webhook: d.Webhook, Event: d.Event, Attempts: d.Attempts,
			LastError: d.LastError, CreatedAt: d.CreatedAt, Payload: string(d.Payload)})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listWebhookDeadLetters(w http.ResponseWriter, r *http.Request) {
	limit, ok := queryLimit(w, r.URL.Query(), DefaultList, MaxList)
	if !ok {
		return
	}
	name := r.PathValue("name")
	if _, err := s.st.GetWebhook(r.Context(), name); err != nil {
		s.storeErr(w, r, "webhook", err)
		return
	}
	s.writeDeadLetters(w, r, name, limit)
}

func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	limit, ok := queryLimit(w, r.URL.Query(), DefaultList, MaxList)
	if !ok {
		return
	}
	name, ok := queryName(w, r.URL.Query(), "webhook", objectName)
	if !ok {
		return
	}
	s.writeDeadLetters(w, r, name, limit)
}

// findDeadLetter looks a dead letter up by id (the store lists them only).
func (s *Server) findDeadLetter(r *http.Request, id int64) (store.DeadLetter, error) {
	list, err := s.st.ListDeadLetters(r.Context(), "", math.MaxInt32)
	if err != nil {
		return store.DeadLetter{}, err
	}
	for _, d := range list {
		if d.ID == id {
			return d, nil
		}
	}
	return store.DeadLetter{}, store.ErrNotFound
}

// redeliver makes one delivery attempt; on success the dead letter is
// deleted, on failure it stays and the answer is 502 with the reason.
func (s *Server) redeliver(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Redeliverer == nil {
		notImplemented(w, "webhook redelivery")
		return
	}
	id, ok := parseID(w, r, "dead letter")
	if !ok {
		return
	}
	if !decode(w, r, &emptyReq{}, true) {
		return
	}
	d, err := s.findDeadLetter(r, id)
	if err != nil {
		s.storeErr(w, r, "dead letter", err)
		return
	}
	if err := s.cfg.Redeliverer.Redeliver(r.Context(), d); err != nil {
		s.log.Warn("api: redelivery failed", "dead_letter", id, "webhook", d.Webhook, "err", err)
		writeError(w, http.StatusBadGateway, "redelivery failed: "+err.Error())
		return
	}
	if err := s.st.DeleteDeadLetter(r.Context(), id); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.internal(w, r, "delete dead letter", err)
		return
	}
	s.log.Info("api: dead letter redelivered", "dead_letter", id, "webhook", d.Webhook, "by", identity(r).User)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteDeadLetter(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r, "dead letter")
	if !ok {
		return
	}
	if err := s.st.DeleteDeadLetter(r.Context(), id); err != nil {
		s.storeErr(w, r, "dead letter", err)
		return
	}
	s.log.Info("api: dead letter deleted", "dead_letter", id, "by", identity(r).User)
	w.WriteHeader(http.StatusNoContent)
}
