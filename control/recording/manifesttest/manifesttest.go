package manifesttest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/recording"
)

// Run runs the suite. newManifest must return a fresh, empty manifest each
// call.
func Run(t *testing.T, newManifest func(t *testing.T) recording.Manifest) {
	tests := []struct {
		name string
		fn   func(t *testing.T, m recording.Manifest)
	}{
		{"AddList", testAddList},
		{"OrderBySeq", testOrder},
		{"UnknownSessionIsEmpty", testUnknown},
		{"ConflictWithStored", testConflictStored},
		{"ConflictInBatchStoresNothing", testConflictInBatch},
		{"EmptyBatch", testEmptyBatch},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newManifest(t)) })
	}
}

// t0 has sub-second precision on purpose: backends must keep microseconds.
var t0 = time.Date(2026, 5, 6, 7, 8, 9, 123456000, time.UTC)

func row(session string, seq int64) recording.Chunk {
	return recording.Chunk{
		SessionID:  session,
		Seq:        seq,
		Key:        recording.ChunkKey(session, seq),
		Size:       1000 + seq,
		SHA256:     fmt.Sprintf("%064x", seq+1),
		PrevSHA256: fmt.Sprintf("%064x", seq),
		At:         t0.Add(time.Duration(seq) * time.Second),
	}
}

func list(t *testing.T, m recording.Manifest, session string) []recording.Chunk {
	t.Helper()
	rows, err := m.ListRecordingChunks(context.Background(), session)
	if err != nil {
		t.Fatalf("list %s: %v", session, err)
	}
	return rows
}

func equal(a, b recording.Chunk) bool {
	return a.SessionID == b.SessionID && a.Seq == b.Seq && a.Key == b.Key && a.Size == b.Size &&
		a.SHA256 == b.SHA256 && a.PrevSHA256 == b.PrevSHA256 && a.At.Equal(b.At)
}

func testAddList(t *testing.T, m recording.Manifest) {
	ctx := context.Background()
	want := []recording.Chunk{row("a", 0), row("a", 1), row("a", 2)}
	if err := m.AddRecordingChunks(ctx, want[:2]); err != nil {
		t.Fatal(err)
	}
	if err := m.AddRecordingChunks(ctx, []recording.Chunk{want[2], row("b", 0)}); err != nil {
		t.Fatal(err)
	}
	got := list(t, m, "a")
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if !equal(got[i], want[i]) {
			t.Errorf("row %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if b := list(t, m, "b"); len(b) != 1 || !equal(b[0], row("b", 0)) {
		t.Fatalf("session b: %+v", b)
	}
}

func testOrder(t *testing.T, m recording.Manifest) {
	ctx := context.Background()
	for _, seq := range []int64{5, 1, 10, 0, 3} {
		if err := m.AddRecordingChunks(ctx, []recording.Chunk{row("o", seq)}); err != nil {
			t.Fatal(err)
		}
	}
	var seqs []int64
	for _, r := range list(t, m, "o") {
		seqs = append(seqs, r.Seq)
	}
	if fmt.Sprint(seqs) != "[0 1 3 5 10]" {
		t.Fatalf("seqs %v, want ascending", seqs)
	}
}

func testUnknown(t *testing.T, m recording.Manifest) {
	if rows := list(t, m, "nobody"); len(rows) != 0 {
		t.Fatalf("unknown session: %+v", rows)
	}
}

func testConflictStored(t *testing.T, m recording.Manifest) {
	ctx := context.Background()
	if err := m.AddRecordingChunks(ctx, []recording.Chunk{row("c", 0)}); err != nil {
		t.Fatal(err)
	}
	again := row("c", 0)
	again.SHA256 = fmt.Sprintf("%064x", 99)
	err := m.AddRecordingChunks(ctx, []recording.Chunk{row("c", 1), again})
	if !errors.Is(err, recording.ErrConflict) {
		t.Fatalf("re-adding seq 0: %v, want ErrConflict", err)
	}
	rows := list(t, m, "c")
	if len(rows) != 1 || !equal(rows[0], row("c", 0)) {
		t.Fatalf("after a failed batch: %+v (all or nothing, the stored row unchanged)", rows)
	}
}

func testConflictInBatch(t *testing.T, m recording.Manifest) {
	err := m.AddRecordingChunks(context.Background(), []recording.Chunk{row("d", 0), row("d", 1), row("d", 1)})
	if !errors.Is(err, recording.ErrConflict) {
		t.Fatalf("seq twice in a batch: %v, want ErrConflict", err)
	}
	if rows := list(t, m, "d"); len(rows) != 0 {
		t.Fatalf("a failed batch stored %d rows", len(rows))
	}
}

func testEmptyBatch(t *testing.T, m recording.Manifest) {
	if err := m.AddRecordingChunks(context.Background(), nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
}

func testConcurrent(t *testing.T, m recording.Manifest) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for s := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			session := fmt.Sprintf("p%d", s)
			for seq := range int64(20) {
				if err := m.AddRecordingChunks(context.Background(), []recording.Chunk{row(session, seq)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for s := range 8 {
		if rows := list(t, m, fmt.Sprintf("p%d", s)); len(rows) != 20 {
			t.Fatalf("session p%d: %d rows, want 20", s, len(rows))
		}
	}
}
