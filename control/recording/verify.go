package recording

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/sluice-gw/sluice/control/blob"
)

// ProblemKind names what is wrong with a chunk.
type ProblemKind string

// Problems Verify reports.
const (
	// ProblemMissingChunk: no manifest row for chunks Seq..Through, though
	// a later chunk has one.
	ProblemMissingChunk ProblemKind = "missing_chunk"
	// ProblemMissingObject: the row is there, its object is not.
	ProblemMissingObject ProblemKind = "missing_object"
	// ProblemSizeMismatch: the object's size differs from the row's.
	ProblemSizeMismatch ProblemKind = "size_mismatch"
	// ProblemHashMismatch: the object's content does not hash to the row's
	// SHA256: the chunk (or its row's hash) was altered.
	ProblemHashMismatch ProblemKind = "hash_mismatch"
	// ProblemChainBroken: the row's PrevSHA256 is not the previous chunk's
	// SHA256 (or the session's genesis): rows were replaced or reordered.
	ProblemChainBroken ProblemKind = "chain_broken"
	// ProblemDuplicateSeq: two rows claim the same Seq.
	ProblemDuplicateSeq ProblemKind = "duplicate_seq"
	// ProblemWrongKey: the row points at another object than its Seq's.
	ProblemWrongKey ProblemKind = "wrong_key"
	// ProblemBadRow: the row is malformed (another session's id, a
	// negative Seq, hashes that are not hex SHA-256).
	ProblemBadRow ProblemKind = "bad_row"
	// ProblemBadFrames: the chunk hashes correctly but does not decode, or
	// mixes the end marker with other frames.
	ProblemBadFrames ProblemKind = "bad_frames"
	// ProblemAfterEnd: chunks follow the end marker.
	ProblemAfterEnd ProblemKind = "after_end"
	// ProblemOrphanObject: an object under the session's prefix that no row
	// names (a row lost after its chunk was written).
	ProblemOrphanObject ProblemKind = "orphan_object"
)

// Problem is one defect Verify found.
type Problem struct {
	Kind    ProblemKind
	Seq     int64 // the chunk concerned; -1 if none can be named
	Through int64 // the last chunk concerned: Seq except for a range of missing chunks
	Key     string
	Detail  string
}

func (p Problem) String() string {
	where := fmt.Sprintf("chunk %d", p.Seq)
	switch {
	case p.Seq < 0:
		where = "object"
	case p.Through != p.Seq:
		where = fmt.Sprintf("chunks %d-%d", p.Seq, p.Through)
	}
	if p.Key != "" {
		where += " (" + p.Key + ")"
	}
	return fmt.Sprintf("%s: %s: %s", where, p.Kind, p.Detail)
}

// Report is the result of Verify.
type Report struct {
	SessionID string
	Chunks    int   // manifest rows
	Bytes     int64 // bytes of the objects read
	// Data bytes by direction and the time span, over the chunks that
	// verified.
	ClientBytes, ServerBytes int64
	First, Last              time.Time
	// Complete: the last chunk is a verified end marker. False while the
	// session is open, or if the recording's tail is missing.
	Complete  bool
	EndReason string // the end marker's reason; "" for a normal end
	Head      string // SHA256 of the last chunk, the chain's head (hex)
	Problems  []Problem
}

// Intact reports whether Verify found no problem.
func (r Report) Intact() bool { return len(r.Problems) == 0 }

// Err is nil for an intact, complete recording; otherwise it wraps
// ErrCorrupt (problems found) or ErrIncomplete (intact, but no end marker).
func (r Report) Err() error {
	switch {
	case !r.Intact():
		return fmt.Errorf("%w: session %s: %d problem(s), first: %s", ErrCorrupt, r.SessionID, len(r.Problems), r.Problems[0])
	case !r.Complete:
		return fmt.Errorf("%w: session %s", ErrIncomplete, r.SessionID)
	}
	return nil
}

// Verify re-reads every chunk of a session's recording, one at a time, and
// checks each object's presence, size and hash, the chain from the
// session's genesis, that Seqs run 0, 1, 2, … without gaps or duplicates,
// that every row names its own object, that no object lacks a row, and that
// the recording ends with its end marker. Problems are in the Report, each
// naming its chunk; one altered link is one problem (the chain goes on from
// the manifest's claim). The error is for failures to verify at all (the
// manifest or the store unreachable, ctx), or ErrNoRecording.
func Verify(ctx context.Context, st blob.Store, m Manifest, sessionID string) (Report, error) {
	rep := Report{SessionID: sessionID}
	if err := ValidateSessionID(sessionID); err != nil {
		return rep, err
	}
	rows, err := m.ListRecordingChunks(ctx, sessionID)
	if err != nil {
		return rep, fmt.Errorf("recording: verify %s: list manifest: %w", sessionID, err)
	}
	objects, err := st.List(ctx, SessionPrefix(sessionID))
	if err != nil {
		return rep, fmt.Errorf("recording: verify %s: list objects: %w", sessionID, err)
	}
	if len(rows) == 0 && len(objects) == 0 {
		return rep, fmt.Errorf("%w %s", ErrNoRecording, sessionID)
	}
	slices.SortStableFunc(rows, func(a, b Chunk) int { return cmp.Compare(a.Seq, b.Seq) })
	rep.Chunks = len(rows)

	problem := func(k ProblemKind, seq int64, key, detail string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{Kind: k, Seq: seq, Through: seq, Key: key, Detail: fmt.Sprintf(detail, args...)})
	}
	named := map[string]bool{}
	prev := Genesis(sessionID) // the hash the next row must link to
	prevKnown := true          // false after a row with malformed hashes
	expect := int64(0)         // the Seq the next row must have
	lastSeq, endSeq := int64(-1), int64(-1)
	for _, row := range rows {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if row.SessionID != sessionID || row.Seq < 0 {
			problem(ProblemBadRow, row.Seq, row.Key, "row of session %q with seq %d", row.SessionID, row.Seq)
			continue
		}
		if row.Seq == lastSeq {
			problem(ProblemDuplicateSeq, row.Seq, row.Key, "a second row for this seq")
			continue
		}
		linked := prevKnown // whether the previous link is known, so this one can be checked
		if row.Seq > expect {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemMissingChunk, Seq: expect, Through: row.Seq - 1,
				Key: ChunkKey(sessionID, expect), Detail: fmt.Sprintf("no manifest row, though chunk %d has one", row.Seq)})
			linked = false
		}
		lastSeq, expect = row.Seq, row.Seq+1
		if endSeq >= 0 {
			problem(ProblemAfterEnd, row.Seq, row.Key, "chunk after the end marker (chunk %d)", endSeq)
		}
		key := ChunkKey(sessionID, row.Seq)
		named[key] = true
		if row.Key != key {
			problem(ProblemWrongKey, row.Seq, key, "the row names object %q", row.Key)
		}
		rowPrev, ok1 := parseHash(row.PrevSHA256)
		rowSum, ok2 := parseHash(row.SHA256)
		if !ok1 || !ok2 {
			problem(ProblemBadRow, row.Seq, key, "hashes are not hex SHA-256")
			prevKnown = false
			continue
		}
		if linked && rowPrev != prev {
			what := fmt.Sprintf("chunk %d's hash", row.Seq-1)
			if row.Seq == 0 {
				what = "the session's genesis hash"
			}
			problem(ProblemChainBroken, row.Seq, key, "its previous hash is not %s: rows were replaced or reordered", what)
		}
		prev, prevKnown = rowSum, true

		data, err := st.Get(ctx, key)
		switch {
		case errors.Is(err, blob.ErrNotFound):
			problem(ProblemMissingObject, row.Seq, key, "the object is missing")
			continue
		case errors.Is(err, blob.ErrTooLarge):
			problem(ProblemSizeMismatch, row.Seq, key, "the object is larger than any chunk can be (manifest: %d bytes)", row.Size)
			continue
		case err != nil:
			return rep, fmt.Errorf("recording: verify %s: read chunk %d: %w", sessionID, row.Seq, err)
		}
		rep.Bytes += int64(len(data))
		if int64(len(data)) != row.Size {
			problem(ProblemSizeMismatch, row.Seq, key, "the object has %d bytes, the manifest says %d", len(data), row.Size)
		}
		if ChunkHash(rowPrev, row.Seq, data) != rowSum {
			problem(ProblemHashMismatch, row.Seq, key, "the object's content does not match its manifest hash: the chunk was altered")
			continue
		}
		end, err := rep.frames(data)
		if err != nil {
			problem(ProblemBadFrames, row.Seq, key, "%v", err)
			continue
		}
		if end {
			endSeq = row.Seq
		}
	}
	if len(rows) > 0 && prevKnown {
		rep.Head = hexHash(prev)
	}
	for _, key := range objects {
		if !named[key] {
			problem(ProblemOrphanObject, parseChunkKey(sessionID, key), key, "an object no manifest row names")
		}
	}
	rep.Complete = endSeq >= 0 && endSeq == lastSeq
	return rep, nil
}

// frames decodes a verified chunk into rep's totals; end reports whether it
// is the end chunk (exactly one end frame).
func (rep *Report) frames(data []byte) (end bool, err error) {
	for i := 0; len(data) > 0; i++ {
		f, n, err := ParseFrame(data)
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("%w: truncated frame", ErrBadFrame)
			}
			return false, err
		}
		data = data[n:]
		switch f.Kind {
		case KindClient:
			rep.ClientBytes += int64(len(f.Data))
		case KindServer:
			rep.ServerBytes += int64(len(f.Data))
		case KindEnd:
			if i != 0 || len(data) != 0 {
				return false, fmt.Errorf("%w: end marker not alone in its chunk", ErrBadFrame)
			}
			rep.EndReason = string(f.Data)
			end = true
		}
		if rep.First.IsZero() || f.At.Before(rep.First) {
			rep.First = f.At
		}
		if f.At.After(rep.Last) {
			rep.Last = f.At
		}
	}
	return end, nil
}
