package audit

import (
	"errors"
	"fmt"
	"time"

	"github.com/sluice-gw/sluice/control/recording"
	"github.com/sluice-gw/sluice/engine"
)

// Recorder adapts a *recording.Recorder to engine.Recorder.
type Recorder struct {
	r *recording.Recorder
}

var _ engine.Recorder = Recorder{}

// NewRecorder returns r as an engine.Recorder.
func NewRecorder(r *recording.Recorder) Recorder { return Recorder{r: r} }

// Start implements engine.Recorder. A full spool (recording.ErrSpoolFull)
// or a closed recorder is an *engine.Error the frontend renders (the
// session is refused: it could not be recorded); the cause stays wrapped.
func (a Recorder) Start(sessionID string) (engine.SessionRecording, error) {
	w, err := a.r.Start(sessionID)
	switch {
	case err == nil:
		return sessionRecording{w}, nil
	case errors.Is(err, recording.ErrSpoolFull):
		return nil, &engine.Error{Code: engine.CodeInternal, Message: "session recording is full: new sessions are refused", Err: err}
	case errors.Is(err, recording.ErrClosed):
		return nil, &engine.Error{Code: engine.CodeShutdown, Message: "session recording is closed: new sessions are refused", Err: err}
	default:
		return nil, &engine.Error{Code: engine.CodeInternal, Message: "session recording failed to start", Err: err}
	}
}

// sessionRecording maps engine directions to recording directions.
type sessionRecording struct {
	w *recording.Writer
}

func (s sessionRecording) Write(d engine.Direction, at time.Time, p []byte) error {
	var dir recording.Direction
	switch d {
	case engine.ToUpstream:
		dir = recording.ClientToServer
	case engine.ToClient:
		dir = recording.ServerToClient
	default:
		return fmt.Errorf("audit: recording: unknown direction %d", d)
	}
	return s.w.Write(dir, at, p)
}

func (s sessionRecording) Close() error { return s.w.Close() }
