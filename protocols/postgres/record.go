package postgres

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/sluice-gw/sluice/engine"
)

// recording is one session's recording on the gateway: both directions
// write to it (serialised here, so the Recorder's SessionRecording need not
// be safe for concurrent use). After the first failure every write fails:
// the session must end.
type recording struct {
	mu     sync.Mutex
	r      engine.SessionRecording
	err    error
	closed bool
}

// recordingError is a failed recording write: the session ends with a
// FATAL "session recording failed".
type recordingError struct{ err error }

func (e *recordingError) Error() string { return "session recording failed: " + e.err.Error() }
func (e *recordingError) Unwrap() error { return e.err }

// clientError is what the client is told.
func (e *recordingError) clientError() *engine.Error {
	return &engine.Error{Code: engine.CodeInternal, Message: e.Error(), Err: e.err}
}

// recordingKey is where a recording lives: its Key() when the recording
// has one, else the session id it was started with.
func recordingKey(r engine.SessionRecording, sessionID string) string {
	if k, ok := r.(interface{ Key() string }); ok {
		return k.Key()
	}
	return sessionID
}

// write records p (which the recording must not keep) before it is
// forwarded in direction d.
func (r *recording) write(d engine.Direction, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if r.closed {
		return nil
	}
	if err := r.r.Write(d, time.Now(), p); err != nil {
		r.err = &recordingError{err}
		return r.err
	}
	return nil
}

// close ends the recording once.
func (r *recording) close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return r.r.Close()
}

// recWriter records every batch before writing it to w.
type recWriter struct {
	w   io.Writer
	rec *recording
	dir engine.Direction
}

func (rw recWriter) Write(p []byte) (int, error) {
	if err := rw.rec.write(rw.dir, p); err != nil {
		return 0, err
	}
	return rw.w.Write(p)
}

// asRecordingError finds a recording failure in a relay error.
func asRecordingError(err error) (*recordingError, bool) {
	var re *recordingError
	ok := errors.As(err, &re)
	return re, ok
}
