package audit

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/blob/fs"
	"github.com/sluice-gw/sluice/control/recording"
	"github.com/sluice-gw/sluice/control/recording/manifesttest"
	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
)

func TestManifestConformance(t *testing.T) {
	manifesttest.Run(t, func(t *testing.T) recording.Manifest { return NewManifest(openSQLite(t)) })
}

func TestManifestConflictWrapsBoth(t *testing.T) {
	m := NewManifest(openSQLite(t))
	ctx := context.Background()
	c := recording.Chunk{SessionID: "s1", Seq: 0, Key: recording.ChunkKey("s1", 0), Size: 1, SHA256: "aa", PrevSHA256: "bb", At: time.Unix(1, 0).UTC()}
	if err := m.AddRecordingChunks(ctx, []recording.Chunk{c}); err != nil {
		t.Fatal(err)
	}
	err := m.AddRecordingChunks(ctx, []recording.Chunk{c})
	if !errors.Is(err, recording.ErrConflict) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("conflict: %v", err)
	}
}

func TestRecorderAdapter(t *testing.T) {
	blobs, err := fs.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	defer blobs.Close()
	man := NewManifest(openSQLite(t))
	rec, err := recording.New(recording.Options{Blob: blobs, Manifest: man, FlushInterval: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var r engine.Recorder = NewRecorder(rec)
	sr, err := r.Start("sess1")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := sr.Write(engine.ToUpstream, at, []byte("select 1;")); err != nil { // 9 bytes client → server
		t.Fatal(err)
	}
	if err := sr.Write(engine.ToClient, at.Add(time.Millisecond), []byte("one row")); err != nil { // 7 bytes back
		t.Fatal(err)
	}
	if err := sr.Write(engine.Direction(7), at, []byte("x")); err == nil {
		t.Fatal("unknown direction accepted")
	}
	if err := sr.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := recording.Verify(context.Background(), blobs, man, "sess1")
	if err != nil || !rep.Complete || rep.ClientBytes != 9 || rep.ServerBytes != 7 {
		t.Fatalf("verify %+v %v", rep, err)
	}

	if err := rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err = r.Start("sess2")
	var e *engine.Error
	if !errors.As(err, &e) || e.Code != engine.CodeShutdown || !errors.Is(err, recording.ErrClosed) {
		t.Fatalf("start after close: %v", err)
	}
}

func TestRecorderSpoolFullRefuses(t *testing.T) {
	blobs, err := fs.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	defer blobs.Close()
	// A high-water mark below one session's end reservation refuses every
	// session: the fail-closed path without racing a real spool.
	rec, err := recording.New(recording.Options{Blob: blobs, Manifest: NewManifest(openSQLite(t)), FlushInterval: -1,
		HighWater: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close(context.Background())
	_, err = NewRecorder(rec).Start("s1")
	var e *engine.Error
	if !errors.As(err, &e) || e.Code != engine.CodeInternal || !errors.Is(err, recording.ErrSpoolFull) ||
		e.Message != "session recording is full: new sessions are refused" {
		t.Fatalf("start with a full spool: %v", err)
	}
}
