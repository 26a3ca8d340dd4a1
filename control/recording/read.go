package recording

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/sluice-gw/sluice/control/blob"
)

// Read writes a session's recording to out as a stream of frames (the
// format Decoder reads), chunk by chunk, verifying each chunk's object, hash
// and link before writing it. It stops at the first chunk that fails, with
// an error wrapping ErrCorrupt that names it; everything written before is
// verified. A recording without its end marker is written whole and then
// ErrIncomplete is returned. Memory: one chunk at a time.
func Read(ctx context.Context, st blob.Store, m Manifest, sessionID string, out io.Writer) error {
	if err := ValidateSessionID(sessionID); err != nil {
		return err
	}
	rows, err := m.ListRecordingChunks(ctx, sessionID)
	if err != nil {
		return fmt.Errorf("recording: read %s: list manifest: %w", sessionID, err)
	}
	if len(rows) == 0 {
		return fmt.Errorf("%w %s", ErrNoRecording, sessionID)
	}
	slices.SortStableFunc(rows, func(a, b Chunk) int { return cmp.Compare(a.Seq, b.Seq) })
	corrupt := func(seq int64, kind ProblemKind, detail string) error {
		return fmt.Errorf("%w: session %s: chunk %d: %s: %s", ErrCorrupt, sessionID, seq, kind, detail)
	}
	prev := Genesis(sessionID)
	ended := false
	for i, row := range rows {
		seq := int64(i)
		switch {
		case ended:
			return corrupt(row.Seq, ProblemAfterEnd, "chunk after the end marker")
		case row.SessionID != sessionID:
			return corrupt(seq, ProblemBadRow, fmt.Sprintf("a row of session %q", row.SessionID))
		case row.Seq < seq:
			return corrupt(row.Seq, ProblemDuplicateSeq, "a second row for this seq")
		case row.Seq > seq:
			return corrupt(seq, ProblemMissingChunk, "no manifest row for it")
		case row.Key != ChunkKey(sessionID, seq):
			return corrupt(seq, ProblemWrongKey, fmt.Sprintf("the row names object %q", row.Key))
		}
		if p, ok := parseHash(row.PrevSHA256); !ok || p != prev {
			return corrupt(seq, ProblemChainBroken, "its previous hash is not the previous chunk's")
		}
		data, err := st.Get(ctx, row.Key)
		if errors.Is(err, blob.ErrNotFound) {
			return corrupt(seq, ProblemMissingObject, "the object is missing")
		}
		if err != nil {
			return fmt.Errorf("recording: read %s: chunk %d: %w", sessionID, seq, err)
		}
		sum := ChunkHash(prev, seq, data)
		if want, ok := parseHash(row.SHA256); !ok || sum != want || int64(len(data)) != row.Size {
			return corrupt(seq, ProblemHashMismatch, "the object's content does not match its manifest hash")
		}
		prev = sum
		if f, n, err := ParseFrame(data); err == nil && f.Kind == KindEnd && n == len(data) {
			ended = true
		}
		if _, err := out.Write(data); err != nil {
			return fmt.Errorf("recording: read %s: write out: %w", sessionID, err)
		}
	}
	if !ended {
		return fmt.Errorf("%w: session %s", ErrIncomplete, sessionID)
	}
	return nil
}
