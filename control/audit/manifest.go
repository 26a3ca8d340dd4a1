package audit

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-gw/sluice/control/recording"
	"github.com/sluice-gw/sluice/control/store"
)

// Manifest adapts a store.Store to recording.Manifest: recording chunk rows
// live in the control store (store.RecordingChunk), and a store conflict is
// reported as recording.ErrConflict (the error wraps both).
type Manifest struct {
	st store.Store
}

var _ recording.Manifest = Manifest{}

// NewManifest returns the manifest of recordings kept in st.
func NewManifest(st store.Store) Manifest { return Manifest{st: st} }

// AddRecordingChunks implements recording.Manifest.
func (m Manifest) AddRecordingChunks(ctx context.Context, batch []recording.Chunk) error {
	if len(batch) == 0 {
		return ctx.Err()
	}
	rows := make([]store.RecordingChunk, len(batch))
	for i, c := range batch {
		rows[i] = store.RecordingChunk{SessionID: c.SessionID, Seq: c.Seq, Key: c.Key, Size: c.Size,
			SHA256: c.SHA256, PrevSHA256: c.PrevSHA256, At: c.At}
	}
	err := m.st.AddRecordingChunks(ctx, rows)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%w: %w", recording.ErrConflict, err)
	}
	return err
}

// ListRecordingChunks implements recording.Manifest.
func (m Manifest) ListRecordingChunks(ctx context.Context, sessionID string) ([]recording.Chunk, error) {
	rows, err := m.st.ListRecordingChunks(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	out := make([]recording.Chunk, len(rows))
	for i, r := range rows {
		out[i] = recording.Chunk{SessionID: r.SessionID, Seq: r.Seq, Key: r.Key, Size: r.Size,
			SHA256: r.SHA256, PrevSHA256: r.PrevSHA256, At: r.At}
	}
	return out, nil
}
