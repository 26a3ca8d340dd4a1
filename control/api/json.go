package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v) // the status is sent; a write error means the client left
}

type errorJSON struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorJSON{Error: msg})
}

// errEmptyBody is returned by decode when the body is empty and optional.
var errEmptyBody = errors.New("request body is empty")

// decode reads one JSON object from r's body into v: at most MaxBodyBytes,
// no unknown fields, nothing after it. It answers 400 itself and returns
// false on failure. With optional, an empty body leaves v untouched.
func decode(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	err := decodeBody(w, r, v)
	if err == nil || (optional && errors.Is(err, errEmptyBody)) {
		return true
	}
	writeError(w, http.StatusBadRequest, err.Error())
	return false
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return errEmptyBody
		case errors.As(err, &tooBig):
			return fmt.Errorf("request body exceeds %d bytes", tooBig.Limit)
		case errors.As(err, &syntax):
			return fmt.Errorf("malformed JSON at offset %d", syntax.Offset)
		case errors.As(err, &typ) && typ.Field == "":
			return fmt.Errorf("request body must be a JSON object, not %s", typ.Value)
		case errors.As(err, &typ):
			return fmt.Errorf("field %q: expected %s, not %s", typ.Field, jsonType(typ.Type.String()), typ.Value)
		default:
			// Unknown fields ("json: unknown field \"x\"") and truncated input.
			return fmt.Errorf("invalid request body: %v", err)
		}
	}
	if dec.More() {
		return errors.New("invalid request body: data after the JSON object")
	}
	var tail [1]byte
	if _, err := dec.Buffered().Read(tail[:]); err == nil && !isSpace(tail[0]) {
		return errors.New("invalid request body: data after the JSON object")
	}
	return nil
}

// jsonType names a Go type of a request field in JSON terms.
func jsonType(goType string) string {
	switch {
	case goType == "string" || goType == "*string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]") || strings.HasPrefix(goType, "*[]"):
		return "an array"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "float"):
		return "a number"
	}
	return "an object"
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// jsonErrorWriter turns the mux's own plain-text errors (404, 405) into JSON
// errors, keeping the status and headers such as Allow.
type jsonErrorWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *jsonErrorWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.Header().Del("Content-Length")
	writeError(w.ResponseWriter, code, http.StatusText(code))
}

func (w *jsonErrorWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return len(p), nil // the plain-text body is replaced by the JSON one
}

var (
	userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$`)
	// Agent and connection names appear in DSNs and as Postgres database
	// names, so they stay within URL- and identifier-safe characters.
	objectName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	// Session ids as the recording layer accepts them (the gateway's are hex).
	sessionIDName = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)
	// Outcome values are lower-case words ("ok", "auth_failed", ...).
	outcomeName = regexp.MustCompile(`^[a-z][a-z_]{0,31}$`)
)

func validName(w http.ResponseWriter, re *regexp.Regexp, kind, name string) bool {
	if !re.MatchString(name) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid %s name %q", kind, name))
		return false
	}
	return true
}

// queryLimit parses the "limit" query parameter: def when absent, else an
// integer from 1 to max.
func queryLimit(w http.ResponseWriter, q url.Values, def, max int) (int, bool) {
	v := q.Get("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > max {
		writeError(w, http.StatusBadRequest, "limit must be an integer from 1 to "+strconv.Itoa(max))
		return 0, false
	}
	return n, true
}

// queryTime parses an RFC 3339 query parameter; the zero time when absent.
func queryTime(w http.ResponseWriter, q url.Values, key string) (time.Time, bool) {
	v := q.Get(key)
	if v == "" {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z, not %q", key, v))
		return time.Time{}, false
	}
	return t.UTC(), true
}

// queryName checks an optional name-valued query parameter against re.
func queryName(w http.ResponseWriter, q url.Values, key string, re *regexp.Regexp) (string, bool) {
	v := q.Get(key)
	if v != "" && !re.MatchString(v) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid %s %q", key, v))
		return "", false
	}
	return v, true
}

// queryEnum checks an optional query parameter against its allowed values.
func queryEnum(w http.ResponseWriter, q url.Values, key string, allowed ...string) (string, bool) {
	v := q.Get(key)
	if v != "" && !slices.Contains(allowed, v) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s must be one of %s, not %q", key, strings.Join(allowed, ", "), v))
		return "", false
	}
	return v, true
}

// parseID parses a positive integer path value (review and dead-letter ids).
func parseID(w http.ResponseWriter, r *http.Request, kind string) (int64, bool) {
	v := r.PathValue("id")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid %s id %q: want a positive integer", kind, v))
		return 0, false
	}
	return n, true
}

// checkText checks a free-text field: at most max bytes of valid UTF-8
// without control characters (newlines and tabs allowed when multiline).
func checkText(field, v string, max int, multiline bool) error {
	if len(v) > max {
		return fmt.Errorf("%s is longer than %d bytes", field, max)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	for _, c := range v {
		if multiline && (c == '\n' || c == '\t') {
			continue
		}
		if unicode.IsControl(c) {
			return fmt.Errorf("%s contains a control character", field)
		}
	}
	return nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
