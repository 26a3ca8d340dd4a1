package recording

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Chunk is one manifest row: where one chunk of a recording is and its link
// in the hash chain. SHA256 and PrevSHA256 are lowercase hex.
type Chunk struct {
	SessionID  string
	Seq        int64 // 0, 1, 2, … without gaps
	Key        string
	Size       int64 // bytes of the chunk's object
	SHA256     string
	PrevSHA256 string
	At         time.Time // when the chunk was sealed
}

// ErrConflict is wrapped by AddRecordingChunks when a row's (SessionID, Seq)
// is already stored or appears twice in the batch.
var ErrConflict = errors.New("recording: manifest row conflict")

// Manifest stores recordings' chunk rows; the control store implements it
// (an adapter maps its RecordingChunk and ErrConflict to these).
//
// Contract:
//   - AddRecordingChunks stores a batch atomically: all rows or none. A
//     (SessionID, Seq) already stored, or twice in the batch, fails the
//     whole batch with an error wrapping ErrConflict. An empty batch is a
//     no-op. The manifest does not check the hash chain; Verify does.
//   - ListRecordingChunks returns a session's rows by Seq ascending; an
//     unknown session is an empty result, not an error.
//   - Both are safe for concurrent use and honour ctx. The Recorder calls
//     AddRecordingChunks from one goroutine, with batches of at most
//     Options.BatchSize rows.
type Manifest interface {
	AddRecordingChunks(ctx context.Context, batch []Chunk) error
	ListRecordingChunks(ctx context.Context, sessionID string) ([]Chunk, error)
}

// MemoryManifest is a Manifest in memory, for tests and tools. The zero
// value is ready to use.
type MemoryManifest struct {
	mu   sync.Mutex
	rows map[string]map[int64]Chunk
}

var _ Manifest = (*MemoryManifest)(nil)

// AddRecordingChunks implements Manifest.
func (m *MemoryManifest) AddRecordingChunks(ctx context.Context, batch []Chunk) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	type rowKey struct {
		session string
		seq     int64
	}
	seen := make(map[rowKey]bool, len(batch))
	for _, c := range batch {
		k := rowKey{c.SessionID, c.Seq}
		if _, ok := m.rows[c.SessionID][c.Seq]; ok || seen[k] {
			return fmt.Errorf("add recording chunk %s/%d: %w", c.SessionID, c.Seq, ErrConflict)
		}
		seen[k] = true
	}
	if m.rows == nil {
		m.rows = map[string]map[int64]Chunk{}
	}
	for _, c := range batch {
		s := m.rows[c.SessionID]
		if s == nil {
			s = map[int64]Chunk{}
			m.rows[c.SessionID] = s
		}
		s[c.Seq] = c
	}
	return nil
}

// ListRecordingChunks implements Manifest.
func (m *MemoryManifest) ListRecordingChunks(ctx context.Context, sessionID string) ([]Chunk, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Chunk, 0, len(m.rows[sessionID]))
	for _, c := range m.rows[sessionID] {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Chunk) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// Delete removes one row (tests use it to simulate a lost row).
func (m *MemoryManifest) Delete(sessionID string, seq int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rows[sessionID], seq)
}
