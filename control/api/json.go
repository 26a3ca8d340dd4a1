package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
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
		case errors.As(err, &typ):
			return fmt.Errorf("field %q: expected %s", typ.Field, typ.Type)
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
)

func validName(w http.ResponseWriter, re *regexp.Regexp, kind, name string) bool {
	if !re.MatchString(name) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid %s name %q", kind, name))
		return false
	}
	return true
}
