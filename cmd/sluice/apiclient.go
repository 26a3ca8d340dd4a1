package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-gw/sluice/engine"
)

// apiClient is a small client for the gateway REST API (/api/v1).
type apiClient struct {
	base  string // e.g. http://127.0.0.1:8009
	token string // bearer token; empty for unauthenticated calls
	http  *http.Client
}

func (a *app) newAPIClient(cfg *config) *apiClient {
	hc := a.httpClient
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &apiClient{base: cfg.api, token: cfg.token, http: hc}
}

// apiError is an error answered by the API: {"error":"message"} with a 4xx/5xx status.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// do sends a request with an optional JSON body and decodes a JSON answer into
// out (unless out is nil). It returns the raw answer body too.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/api/v1"+path, rd)
	if err != nil {
		return nil, fmt.Errorf("bad API address %q: %w", c.base, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", "sluice-cli/"+version)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Sluice API at %s: %w", c.base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, decodeAPIError(resp.StatusCode, raw)
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("%s %s: unexpected answer from the API: %w", method, path, err)
		}
	}
	return raw, nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func decodeAPIError(status int, raw []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		return &apiError{Status: status, Message: e.Error}
	}
	msg := strings.TrimSpace(string(raw))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &apiError{Status: status, Message: msg}
}

func pathName(name string) string { return url.PathEscape(name) }

// flexString decodes a JSON string, number or null into a string.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	if string(b) == "null" {
		*f = ""
		return nil
	}
	*f = flexString(b)
	return nil
}

type loginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

type tokenResponse struct {
	ID        flexString `json:"id,omitempty"`
	Token     string     `json:"token"`
	User      string     `json:"user"`
	ExpiresAt flexString `json:"expires_at"`
}

type gatewayInfo struct {
	PGAddr        string `json:"pg_addr"`
	TunnelAddr    string `json:"tunnel_addr"`
	CAFingerprint string `json:"ca_fingerprint"`
	CAPEM         string `json:"ca_pem"`
}

type meResponse struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
}

type agentKeyResponse struct {
	Name string `json:"name"`
	Key  string `json:"key,omitempty"`
	DSN  string `json:"dsn,omitempty"`
}

type userPut struct {
	Password *string   `json:"password,omitempty"`
	Groups   *[]string `json:"groups,omitempty"`
}

// connectionPut is the body of PUT /connections/{name}. The API replaces
// the whole connection: an omitted block removes that policy.
type connectionPut struct {
	Agent      string                  `json:"agent"`
	Type       string                  `json:"type"`
	Target     string                  `json:"target"`
	Guardrails *engine.GuardrailPolicy `json:"guardrails,omitempty"`
	Masking    *engine.MaskingPolicy   `json:"masking,omitempty"`
}

func (c *apiClient) login(ctx context.Context, user, password string) (*tokenResponse, error) {
	var out tokenResponse
	if _, err := c.do(ctx, http.MethodPost, "/login", loginRequest{User: user, Password: password}, &out); err != nil {
		return nil, err
	}
	if out.Token == "" {
		return nil, fmt.Errorf("login: the API answered without a token")
	}
	return &out, nil
}

func (c *apiClient) info(ctx context.Context) (*gatewayInfo, error) {
	var out gatewayInfo
	if _, err := c.do(ctx, http.MethodGet, "/info", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *apiClient) me(ctx context.Context) (*meResponse, error) {
	var out meResponse
	if _, err := c.do(ctx, http.MethodGet, "/me", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// createAgent creates or rotates an agent and returns its key DSN.
func (c *apiClient) createAgent(ctx context.Context, name, transport string) (*agentKeyResponse, error) {
	var out agentKeyResponse
	body := map[string]string{"name": name}
	if transport != "" {
		body["transport"] = transport
	}
	if _, err := c.do(ctx, http.MethodPost, "/agents", body, &out); err != nil {
		return nil, err
	}
	if out.DSN == "" {
		return nil, fmt.Errorf("create agent %s: the API answered without a DSN", name)
	}
	return &out, nil
}

// putAgent upserts an agent; DSN is set only when the agent was newly created.
func (c *apiClient) putAgent(ctx context.Context, name string) (*agentKeyResponse, error) {
	var out agentKeyResponse
	if _, err := c.do(ctx, http.MethodPut, "/agents/"+pathName(name), struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *apiClient) putUser(ctx context.Context, name string, u userPut) error {
	_, err := c.do(ctx, http.MethodPut, "/users/"+pathName(name), u, nil)
	return err
}

func (c *apiClient) putConnection(ctx context.Context, name string, cp connectionPut) error {
	_, err := c.do(ctx, http.MethodPut, "/connections/"+pathName(name), cp, nil)
	return err
}

func (c *apiClient) createToken(ctx context.Context, user, ttl, name string) (*tokenResponse, error) {
	body := map[string]string{}
	if ttl != "" {
		body["ttl"] = ttl
	}
	if name != "" {
		body["name"] = name
	}
	var out tokenResponse
	if _, err := c.do(ctx, http.MethodPost, "/users/"+pathName(user)+"/tokens", body, &out); err != nil {
		return nil, err
	}
	if out.Token == "" {
		return nil, fmt.Errorf("create token: the API answered without a token")
	}
	return &out, nil
}

// list GETs a collection (agents, connections, users, sessions) as raw JSON.
func (c *apiClient) list(ctx context.Context, collection string, limit int) ([]byte, error) {
	p := "/" + collection
	if limit > 0 {
		p += "?limit=" + strconv.Itoa(limit)
	}
	return c.do(ctx, http.MethodGet, p, nil, nil)
}

// remove DELETEs one object of a collection.
func (c *apiClient) remove(ctx context.Context, collection, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/"+collection+"/"+pathName(name), nil, nil)
	return err
}

// get GETs path (under /api/v1) with query q and returns the raw JSON.
func (c *apiClient) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return c.do(ctx, http.MethodGet, path, nil, nil)
}

type groupPut struct {
	Description string `json:"description,omitempty"`
}

// rulePut is the body of PUT /rules/{name}; the API replaces the whole rule.
type rulePut struct {
	Groups           []string                `json:"groups"`
	Connections      []string                `json:"connections"`
	Guardrails       *engine.GuardrailPolicy `json:"guardrails,omitempty"`
	Masking          *engine.MaskingPolicy   `json:"masking,omitempty"`
	RequireReview    bool                    `json:"require_review,omitempty"`
	ReviewStatements []string                `json:"review_statements,omitempty"`
	MaxSession       string                  `json:"max_session,omitempty"`
	Hours            string                  `json:"hours,omitempty"`
}

// webhookPut is the body of PUT /webhooks/{name}: an omitted url or secret
// keeps the stored one.
type webhookPut struct {
	URL    *string  `json:"url,omitempty"`
	Secret *string  `json:"secret,omitempty"`
	Format string   `json:"format,omitempty"`
	Events []string `json:"events,omitempty"`
}

func (c *apiClient) putGroup(ctx context.Context, name string, g groupPut) error {
	_, err := c.do(ctx, http.MethodPut, "/groups/"+pathName(name), g, nil)
	return err
}

func (c *apiClient) putRule(ctx context.Context, name string, r rulePut) error {
	_, err := c.do(ctx, http.MethodPut, "/rules/"+pathName(name), r, nil)
	return err
}

func (c *apiClient) putWebhook(ctx context.Context, name string, w webhookPut) error {
	_, err := c.do(ctx, http.MethodPut, "/webhooks/"+pathName(name), w, nil)
	return err
}

// Trailers of GET /sessions/{id}/recording (see control/api).
const (
	trailerRecordingStatus = "Sluice-Recording-Status"
	trailerRecordingError  = "Sluice-Recording-Error"
)

// recordingResult is how a recording download ended.
type recordingResult struct {
	Bytes  int64
	Status string // complete, incomplete, error, or "" if the API sent none
	Error  string // with Status error: why the stream stopped
}

// recording streams a session's recording to w. It has no overall timeout:
// a recording has no size cap.
func (c *apiClient) recording(ctx context.Context, session string, w io.Writer) (recordingResult, error) {
	var res recordingResult
	path := "/sessions/" + pathName(session) + "/recording"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1"+path, nil)
	if err != nil {
		return res, fmt.Errorf("bad API address %q: %w", c.base, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("User-Agent", "sluice-cli/"+version)
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return res, fmt.Errorf("cannot reach the Sluice API at %s: %w", c.base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return res, decodeAPIError(resp.StatusCode, raw)
	}
	res.Bytes, err = io.Copy(w, resp.Body)
	if err != nil {
		return res, fmt.Errorf("recording of session %s: stream broken after %d bytes: %w", session, res.Bytes, err)
	}
	res.Status = resp.Trailer.Get(trailerRecordingStatus)
	res.Error = resp.Trailer.Get(trailerRecordingError)
	return res, nil
}
