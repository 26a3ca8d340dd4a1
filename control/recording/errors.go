package recording

import "errors"

var (
	// ErrSpoolFull: Start refuses a new session because the spool is above
	// its high-water mark (fail closed: the caller refuses the session), or
	// a running session's Write waited Options.MaxStall for room in vain
	// (the caller ends the session; the error also wraps ErrRecordingFailed).
	ErrSpoolFull = errors.New("recording: spool full")
	// ErrRecordingFailed: the session's recording can no longer be complete
	// (spool full past MaxStall, or a chunk that could not be stored). It
	// is sticky: every later Write returns it, and so does Close. The
	// caller must end the session.
	ErrRecordingFailed = errors.New("recording: failed")
	// ErrClosed: the Writer or the Recorder is closed.
	ErrClosed = errors.New("recording: closed")
	// ErrNoRecording: Verify or Read found neither manifest rows nor objects
	// for the session.
	ErrNoRecording = errors.New("recording: no recording for session")
	// ErrCorrupt: a recording has altered, missing or misplaced chunks.
	ErrCorrupt = errors.New("recording: corrupt")
	// ErrIncomplete: a recording has no end marker: the session is still
	// open, or the recording was cut short (its tail is missing).
	ErrIncomplete = errors.New("recording: incomplete (no end marker)")
)
