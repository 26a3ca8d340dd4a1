// Package recording records sessions: the gateway feeds each session's
// traffic to a Writer, which frames it (direction, time, bytes) into chunks;
// background workers write the chunks to a blob.Store and their hash-chained
// manifest rows to a Manifest in batches (group commit), off the data path.
// Verify re-reads a recording and names any chunk that is altered, missing
// or out of place, and whether the recording lacks its end marker; Read
// streams a verified recording out in the documented frame format, which
// Decoder parses. docs/recordings.md describes the formats and semantics.
//
// Memory is bounded by a spool shared by all sessions: when it is nearly
// full new sessions are refused (ErrSpoolFull, fail closed); when it is full
// a running session's Write waits (backpressure) and, past a bound, fails,
// so the caller ends the session. Nothing is dropped silently: every loss is
// an error to the caller, a log line, a metric, and a gap Verify names.
//
// recording imports control/blob only; it must not import control/store
// (the store adapts to Manifest) nor anything of the data plane.
package recording
