package recording

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fullChunk is one write that fills exactly one MinChunkSize chunk.
func fullChunk(i int) []byte { return pattern("full", i*MinChunkSize, MinChunkSize-FrameHeaderLen) }

// gate blocks Puts until opened (or their context ends).
type gate struct{ ch chan struct{} }

func newGate() *gate  { return &gate{ch: make(chan struct{})} }
func (g *gate) open() { close(g.ch) }
func (g *gate) put(ctx context.Context, _ string) error {
	select {
	case <-g.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Above the high-water mark new sessions are refused (fail closed) and
// counted; once the spool drains they are accepted again, and the running
// session lost nothing.
func TestSpoolFullRefusesStart(t *testing.T) {
	g := newGate()
	r := newRig(t, func(o *Options, r *rig) {
		o.SpoolBytes = 16 * MinChunkSize
		r.blob.put = g.put
	})
	w := r.start("filler")
	for i := range 12 {
		if err := w.Write(ClientToServer, time.Time{}, fullChunk(i)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if _, err := r.rec.Start("refused"); !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("Start with the spool at %d of %d bytes: %v, want ErrSpoolFull",
			r.rec.spool.used.Load(), r.rec.opts.SpoolBytes, err)
	}
	if n := r.metric("sluice_recording_spool_full_total", "outcome", "refused"); n != 1 {
		t.Fatalf("refusals counted %v, want 1", n)
	}
	if n := r.metric("sluice_recording_spool_bytes"); n <= float64(r.rec.opts.HighWater) {
		t.Fatalf("spool gauge %v, want above the high-water mark %d", n, r.rec.opts.HighWater)
	}
	g.open()
	eventually(t, "the spool to drain", func() bool { return r.rec.spool.used.Load() <= endReserve })
	late := r.start("accepted")
	if err := late.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rep := r.verify("filler")
	if rep.Err() != nil || rep.ClientBytes != 12*(MinChunkSize-FrameHeaderLen) {
		t.Fatalf("report %+v", rep)
	}
}

// A slow blob store slows the writer down (backpressure) instead of
// growing memory or losing data.
func TestSlowBlobBackpressure(t *testing.T) {
	const chunks = 120
	r := newRig(t, func(o *Options, r *rig) {
		o.SpoolBytes = 4 * MinChunkSize
		o.HighWater = 2 * MinChunkSize
		o.Workers = 2
		o.MaxStall = 20 * time.Second
		r.blob.put = func(context.Context, string) error { time.Sleep(5 * time.Millisecond); return nil }
	})
	w := r.start("slow")
	start := time.Now()
	for i := range chunks {
		if err := w.Write(ClientToServer, time.Time{}, fullChunk(i)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	elapsed := time.Since(start)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// The spool holds under 4 chunks, so the writer cannot finish before
	// the store has taken most of them: (chunks-4) × 5ms over 2 workers.
	if min := (chunks - 4) * 5 * time.Millisecond / 2; elapsed < min {
		t.Fatalf("writes took %v; with backpressure they cannot take less than %v", elapsed, min)
	}
	if n := r.metric("sluice_recording_spool_full_total", "outcome", "waited"); n == 0 {
		t.Fatal("no write waited for the spool")
	}
	if peak := r.blob.peak.Load(); peak > 4*MinChunkSize {
		t.Fatalf("spool peaked at %d bytes, limit %d", peak, 4*MinChunkSize)
	}
	got, err := readBack(t, r.blob, r.manifest, "slow")
	if err != nil {
		t.Fatal(err)
	}
	for i := range chunks {
		want := fullChunk(i)
		if string(got.client[i*len(want):(i+1)*len(want)]) != string(want) {
			t.Fatalf("chunk %d's bytes differ", i)
		}
	}
}

// When the store stalls longer than MaxStall, a running session's Write
// fails (sticky) rather than dropping bytes; every byte accepted before is
// in the recording, and the end marker says why it stopped.
func TestStalledBlobFailsRunningSession(t *testing.T) {
	g := newGate()
	r := newRig(t, func(o *Options, r *rig) {
		o.SpoolBytes = 16 * MinChunkSize
		o.MaxStall = 100 * time.Millisecond
		r.blob.put = g.put
	})
	w := r.start("stalled")
	accepted := 0
	var werr error
	for i := range 100 {
		if werr = w.Write(ClientToServer, time.Time{}, fullChunk(i)); werr != nil {
			break
		}
		accepted++
	}
	if !errors.Is(werr, ErrSpoolFull) || !errors.Is(werr, ErrRecordingFailed) {
		t.Fatalf("write into a stalled spool: %v, want ErrSpoolFull and ErrRecordingFailed", werr)
	}
	if accepted == 0 || accepted >= 16 {
		t.Fatalf("%d writes accepted before the spool filled", accepted)
	}
	begin := time.Now()
	if err := w.Write(ServerToClient, time.Time{}, []byte("x")); !errors.Is(err, ErrRecordingFailed) {
		t.Fatalf("write after failure: %v, want the sticky error", err)
	}
	if time.Since(begin) > 50*time.Millisecond {
		t.Fatal("the sticky error should return at once")
	}
	if n := r.metric("sluice_recording_spool_full_total", "outcome", "failed"); n != 1 {
		t.Fatalf("spool failures counted %v, want 1", n)
	}
	if n := r.metric("sluice_recording_failures_total", "reason", "spool_full"); n != 1 {
		t.Fatalf("recording failures counted %v, want 1", n)
	}
	g.open()
	if err := w.Close(); !errors.Is(err, ErrRecordingFailed) {
		t.Fatalf("Close: %v, want the failure", err)
	}
	rep := r.verify("stalled")
	if !rep.Intact() || !rep.Complete {
		t.Fatalf("report %+v: everything accepted should be there, with the end marker", rep)
	}
	if rep.ClientBytes != int64(accepted*(MinChunkSize-FrameHeaderLen)) || rep.ServerBytes != 0 {
		t.Fatalf("recorded %d client bytes, %d accepted", rep.ClientBytes, accepted*(MinChunkSize-FrameHeaderLen))
	}
	if !strings.Contains(rep.EndReason, "spool full") {
		t.Fatalf("end reason %q does not say why", rep.EndReason)
	}
}

// A chunk the store keeps refusing fails the session; Verify names the gap
// and the end marker names the chunk.
func TestBlobFailureFailsSession(t *testing.T) {
	bad := ChunkKey("bf", 2)
	r := newRig(t, func(o *Options, r *rig) {
		r.blob.put = func(_ context.Context, key string) error {
			if key == bad {
				return errors.New("disk on fire")
			}
			return nil
		}
	})
	w := r.start("bf")
	for i := range 6 {
		if err := w.Write(ClientToServer, time.Time{}, fullChunk(i)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	eventually(t, "the failure to reach the writer", func() bool { return w.Err() != nil })
	if err := w.Write(ClientToServer, time.Time{}, []byte("more")); !errors.Is(err, ErrRecordingFailed) {
		t.Fatalf("write after the store failed: %v", err)
	}
	err := w.Close()
	if !errors.Is(err, ErrRecordingFailed) || !strings.Contains(err.Error(), "chunk 2") {
		t.Fatalf("Close: %v, want a failure naming chunk 2", err)
	}
	rep := r.verify("bf")
	wantProblems(t, rep, Problem{Kind: ProblemMissingChunk, Seq: 2})
	if !strings.Contains(rep.EndReason, "chunk 2") {
		t.Fatalf("end reason %q", rep.EndReason)
	}
	if n := r.metric("sluice_recording_write_errors_total", "target", "blob"); n != 3 {
		t.Fatalf("blob write errors %v, want 3 (one per attempt)", n)
	}
	if n := r.metric("sluice_recording_failures_total", "reason", "blob"); n != 1 {
		t.Fatalf("blob failures %v, want 1", n)
	}
}

func TestManifestFailureFailsSession(t *testing.T) {
	r := newRig(t, func(o *Options, r *rig) {
		r.manifest.add = func(context.Context, []Chunk) error { return errors.New("database gone") }
	})
	w := r.start("mf")
	if err := w.Write(ClientToServer, time.Time{}, []byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, ErrRecordingFailed) {
		t.Fatalf("Close: %v", err)
	}
	if n := r.metric("sluice_recording_failures_total", "reason", "manifest"); n != 1 {
		t.Fatalf("manifest failures %v, want 1", n)
	}
	if n := r.metric("sluice_recording_write_errors_total", "target", "manifest"); n < 3 {
		t.Fatalf("manifest write errors %v, want at least 3", n)
	}
	// The objects exist without rows: Verify still finds them.
	rep := r.verify("mf")
	wantProblems(t, rep, Problem{Kind: ProblemOrphanObject, Seq: 0}, Problem{Kind: ProblemOrphanObject, Seq: 1})
}

// A batch that was stored although the manifest reported an error (a
// timeout after commit) is retried, conflicts, and is settled row by row:
// no failure, no duplicate.
func TestManifestAmbiguousCommit(t *testing.T) {
	var once atomic.Bool
	r := newRig(t, func(o *Options, r *rig) {
		r.manifest.after = func([]Chunk) error {
			if once.CompareAndSwap(false, true) {
				return context.DeadlineExceeded
			}
			return nil
		}
	})
	w := r.start("amb")
	if err := w.Write(ClientToServer, time.Time{}, []byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if rep := r.verify("amb"); rep.Err() != nil {
		t.Fatal(rep.Err())
	}
	if n := r.metric("sluice_recording_write_errors_total", "target", "manifest"); n < 1 {
		t.Fatal("the failed attempt was not counted")
	}
}

// A genuine conflict (another recording already holds the seq) fails the
// session instead of being papered over.
func TestManifestGenuineConflict(t *testing.T) {
	r := newRig(t, nil)
	if err := r.manifest.AddRecordingChunks(context.Background(), []Chunk{{SessionID: "clash", Seq: 0, Key: "x", SHA256: "y"}}); err != nil {
		t.Fatal(err)
	}
	w := r.start("clash")
	if err := w.Write(ClientToServer, time.Time{}, []byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, ErrRecordingFailed) || !errors.Is(err, ErrConflict) {
		t.Fatalf("Close: %v, want a failure wrapping ErrConflict", err)
	}
}

// Close with a deadline aborts writes stuck in a dead store; the goroutines
// still stop (TestMain checks for leaks) and the loss is reported.
func TestCloseDeadlineAbortsStuckWrites(t *testing.T) {
	g := newGate() // never opened
	r := newRig(t, func(o *Options, r *rig) { r.blob.put = g.put })
	w := r.start("stuck")
	if err := w.Write(ClientToServer, time.Time{}, []byte("q")); err != nil {
		t.Fatal(err)
	}
	r.rec.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := r.rec.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want the deadline", err)
	}
	if err := w.Close(); !errors.Is(err, ErrRecordingFailed) {
		t.Fatalf("writer Close after an aborted shutdown: %v", err)
	}
}
