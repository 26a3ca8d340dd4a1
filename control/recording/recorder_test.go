package recording

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.UTC)

func TestRoundTrip(t *testing.T) {
	r := newRig(t, nil)
	w := r.start("sess-1")
	script := []struct {
		dir  Direction
		data string
	}{
		{ClientToServer, "SELECT 1;"},
		{ServerToClient, "1 row"},
		{ClientToServer, strings.Repeat("x", 3*MinChunkSize)}, // spans chunks
		{ServerToClient, "done"},
	}
	var wantC, wantS []byte
	for i, s := range script {
		if err := w.Write(s.dir, t0.Add(time.Duration(i)*time.Second), []byte(s.data)); err != nil {
			t.Fatal(err)
		}
		if s.dir == ClientToServer {
			wantC = append(wantC, s.data...)
		} else {
			wantS = append(wantS, s.data...)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	rep := r.verify("sess-1")
	if !rep.Intact() || !rep.Complete || rep.Err() != nil {
		t.Fatalf("report: %+v", rep)
	}
	if rep.ClientBytes != int64(len(wantC)) || rep.ServerBytes != int64(len(wantS)) {
		t.Fatalf("report counts %d/%d bytes, want %d/%d", rep.ClientBytes, rep.ServerBytes, len(wantC), len(wantS))
	}
	if !rep.First.Equal(t0) {
		t.Fatalf("first frame at %v, want %v", rep.First, t0)
	}
	if rep.Chunks < 4 {
		t.Fatalf("%d chunks: a %d-byte write should span several %d-byte chunks", rep.Chunks, 3*MinChunkSize, MinChunkSize)
	}
	got, err := readBack(t, r.blob, r.manifest, "sess-1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.client, wantC) || !bytes.Equal(got.server, wantS) {
		t.Fatalf("read back %d/%d bytes, want %d/%d", len(got.client), len(got.server), len(wantC), len(wantS))
	}
	if got.end == nil || len(got.end.Data) != 0 {
		t.Fatalf("end frame %+v, want one with an empty reason", got.end)
	}
	var out strings.Builder
	if _, err := AuditVerify(context.Background(), r.blob, r.manifest, "sess-1", &out); err != nil {
		t.Fatalf("AuditVerify: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "result: OK") {
		t.Fatalf("AuditVerify output:\n%s", out.String())
	}
	if r.metric("sluice_recording_spool_bytes") != 0 {
		t.Fatalf("spool holds %v bytes after the recording was written", r.metric("sluice_recording_spool_bytes"))
	}
}

// TestDocumentedFormat rebuilds the first chunk and its manifest row from
// docs/recordings.md's rules alone, so the docs and the code cannot drift.
func TestDocumentedFormat(t *testing.T) {
	r := newRig(t, func(o *Options, _ *rig) { o.Clock = func() time.Time { return t0 } })
	w := r.start("abc123")
	if err := w.Write(ClientToServer, t0, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ServerToClient, t0.Add(time.Millisecond), []byte("yo")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	frame := func(kind byte, at time.Time, data string) []byte {
		b := []byte{kind}
		b = binary.BigEndian.AppendUint64(b, uint64(at.UnixNano()))
		b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
		return append(b, data...)
	}
	payload0 := append(frame('C', t0, "hi"), frame('S', t0.Add(time.Millisecond), "yo")...)
	payload1 := frame('E', t0, "")
	genesis := sha256.Sum256([]byte("sluice-recording:abc123"))
	link := func(prev []byte, seq uint64, payload []byte) []byte {
		h := sha256.New()
		h.Write(prev)
		h.Write(binary.BigEndian.AppendUint64(nil, seq))
		h.Write(payload)
		return h.Sum(nil)
	}
	sum0 := link(genesis[:], 0, payload0)
	sum1 := link(sum0, 1, payload1)
	want := []Chunk{
		{SessionID: "abc123", Seq: 0, Key: "recordings/abc123/0000000000000000", Size: int64(len(payload0)),
			SHA256: hex.EncodeToString(sum0), PrevSHA256: hex.EncodeToString(genesis[:]), At: t0},
		{SessionID: "abc123", Seq: 1, Key: "recordings/abc123/0000000000000001", Size: int64(len(payload1)),
			SHA256: hex.EncodeToString(sum1), PrevSHA256: hex.EncodeToString(sum0), At: t0},
	}
	rows, err := r.manifest.ListRecordingChunks(context.Background(), "abc123")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Fatalf("manifest rows\n got %+v\nwant %+v", rows, want)
	}
	for i, p := range [][]byte{payload0, payload1} {
		got, err := r.fs.Get(context.Background(), want[i].Key)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("chunk %d object\n got %x\nwant %x", i, got, p)
		}
	}
	if rep := r.verify("abc123"); rep.Head != want[1].SHA256 {
		t.Fatalf("head %s, want %s", rep.Head, want[1].SHA256)
	}
}

// Many sessions, each written from two goroutines (one per direction) as
// the data path does: every byte comes back, per direction, in order.
func TestConcurrentSessions(t *testing.T) {
	r := newRig(t, func(o *Options, _ *rig) {
		o.FlushInterval = 5 * time.Millisecond
		o.SpoolBytes = 8 << 20
	})
	const sessions = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*sessions)
	sizes := make([][2]int, sessions)
	for i := range sessions {
		id := fmt.Sprintf("s%02d", i)
		w := r.start(id)
		var dirs sync.WaitGroup
		for d, dir := range []Direction{ClientToServer, ServerToClient} {
			dirs.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer dirs.Done()
				rng := rand.New(rand.NewPCG(uint64(i), uint64(d)))
				off := 0
				for range 15 + rng.IntN(15) {
					n := 1 + rng.IntN(3*MinChunkSize/2)
					if err := w.Write(dir, time.Time{}, pattern(id+string(dir), off, n)); err != nil {
						errs <- err
						return
					}
					off += n
				}
				sizes[i][d] = off
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirs.Wait()
			if err := w.Close(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range sessions {
		id := fmt.Sprintf("s%02d", i)
		if rep := r.verify(id); rep.Err() != nil {
			t.Fatalf("%s: %v", id, rep.Err())
		}
		got, err := readBack(t, r.blob, r.manifest, id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.client, pattern(id+"C", 0, sizes[i][0])) || !bytes.Equal(got.server, pattern(id+"S", 0, sizes[i][1])) {
			t.Fatalf("%s: streams differ from what was written", id)
		}
	}
	if n := r.metric("sluice_recording_sessions_active"); n != 0 {
		t.Fatalf("%v sessions still active", n)
	}
}

// A 50 MB session is recorded whole with the default chunk size: there is
// no per-session cap, and the spool stays within its bound throughout.
func TestLargeSessionNeverCapped(t *testing.T) {
	const total = 50 << 20
	r := newRig(t, func(o *Options, _ *rig) {
		o.ChunkSize = 256 << 10
		o.SpoolBytes = 4 << 20
	})
	w := r.start("big")
	h := sha256.New()
	for off := 0; off < total; {
		n := min(64<<10, total-off)
		p := pattern("big", off, n)
		h.Write(p)
		if err := w.Write(ClientToServer, time.Time{}, p); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
		off += n
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rep := r.verify("big")
	if rep.Err() != nil {
		t.Fatal(rep.Err())
	}
	if rep.ClientBytes != total {
		t.Fatalf("recorded %d bytes of %d", rep.ClientBytes, total)
	}
	if min := total / (256 << 10); rep.Chunks < min {
		t.Fatalf("%d chunks, want at least %d", rep.Chunks, min)
	}
	got, err := readBack(t, r.blob, r.manifest, "big")
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got.client) != [32]byte(h.Sum(nil)) {
		t.Fatal("read back differs from what was written")
	}
	if peak := r.blob.peak.Load(); peak > 4<<20 || peak == 0 {
		t.Fatalf("spool peaked at %d bytes (limit %d)", peak, 4<<20)
	}
	if b := r.metric("sluice_recording_bytes_written_total"); b < total {
		t.Fatalf("bytes written metric %v < %d", b, total)
	}
}

func TestFlushIntervalWritesIdleSessions(t *testing.T) {
	r := newRig(t, func(o *Options, _ *rig) { o.FlushInterval = 10 * time.Millisecond })
	w := r.start("idle")
	if err := w.Write(ClientToServer, time.Time{}, []byte("a statement, then silence")); err != nil {
		t.Fatal(err)
	}
	// Without the timer the bytes would sit in the open chunk until Close.
	eventually(t, "the partial chunk to reach the manifest", func() bool {
		rows, _ := r.manifest.ListRecordingChunks(context.Background(), "idle")
		return len(rows) == 1
	})
	rep := r.verify("idle")
	if !rep.Intact() || rep.Complete || rep.ClientBytes != 25 {
		t.Fatalf("open recording: %+v", rep)
	}
	if !errors.Is(rep.Err(), ErrIncomplete) {
		t.Fatalf("open recording: %v, want ErrIncomplete", rep.Err())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if rep := r.verify("idle"); rep.Err() != nil {
		t.Fatal(rep.Err())
	}
}

// Manifest rows are committed in batches when the manifest is slower than
// the chunks arrive (group commit), and one by one when idle.
func TestGroupCommit(t *testing.T) {
	r := newRig(t, func(o *Options, r *rig) {
		r.manifest.add = func(context.Context, []Chunk) error { time.Sleep(20 * time.Millisecond); return nil }
	})
	var ws []*Writer
	for i := range 10 {
		ws = append(ws, r.start(fmt.Sprintf("g%d", i)))
	}
	for round := range 10 {
		for _, w := range ws {
			if err := w.Write(ClientToServer, time.Time{}, bytes.Repeat([]byte{byte(round)}, MinChunkSize)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, w := range ws {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	sizes := r.manifest.batchSizes()
	rows, biggest := 0, 0
	for _, n := range sizes {
		rows += n
		biggest = max(biggest, n)
	}
	if rows < 100 {
		t.Fatalf("%d rows committed, want at least 100", rows)
	}
	if len(sizes) > rows/4 || biggest < 8 {
		t.Fatalf("%d manifest writes for %d rows (largest %d): rows are not batched", len(sizes), rows, biggest)
	}
	if n := r.metric("sluice_recording_manifest_batch_rows"); int(n) != len(sizes) {
		t.Fatalf("batch histogram counted %v batches, manifest saw %d", n, len(sizes))
	}
}

func TestWriterContract(t *testing.T) {
	r := newRig(t, nil)
	if _, err := r.rec.Start("../escape"); err == nil {
		t.Fatal("Start accepted a session id that is not a key segment")
	}
	w := r.start("c1")
	if _, err := r.rec.Start("c1"); err == nil {
		t.Fatal("Start accepted a session already being recorded")
	}
	if err := w.Write('X', time.Time{}, []byte("x")); err == nil {
		t.Fatal("Write accepted an invalid direction")
	}
	if err := w.Write(ClientToServer, time.Time{}, nil); err != nil {
		t.Fatalf("empty write: %v", err)
	}
	p := []byte("caller's buffer")
	if err := w.Write(ClientToServer, time.Time{}, p); err != nil {
		t.Fatal(err)
	}
	copy(p, "XXXXXXXXXXXXXXX") // Write must have copied
	if err := w.CloseWithError(errors.New("admin killed the session")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := w.Write(ClientToServer, time.Time{}, []byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v, want ErrClosed", err)
	}
	got, err := readBack(t, r.blob, r.manifest, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.client) != "caller's buffer" {
		t.Fatalf("recorded %q", got.client)
	}
	if rep := r.verify("c1"); rep.EndReason != "admin killed the session" || !rep.Complete {
		t.Fatalf("end reason %q complete %v", rep.EndReason, rep.Complete)
	}
	// The id is free again once closed (the chunks would collide, but that
	// is the manifest's ErrConflict to report, tested elsewhere).
	if n := r.metric("sluice_recording_sessions_active"); n != 0 {
		t.Fatalf("active gauge %v after close", n)
	}
}

// Close on the Recorder ends open recordings with a reason and refuses new
// ones.
func TestRecorderClose(t *testing.T) {
	r := newRig(t, nil)
	w := r.start("open")
	if err := w.Write(ServerToClient, time.Time{}, []byte("partial")); err != nil {
		t.Fatal(err)
	}
	if err := r.rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.rec.Start("new"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
	if err := w.Write(ServerToClient, time.Time{}, []byte("more")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after the recorder closed: %v", err)
	}
	rep := r.verify("open")
	if rep.Err() != nil || rep.EndReason != "recorder closed" || rep.ServerBytes != 7 {
		t.Fatalf("report %+v", rep)
	}
}

func TestOptionsValidate(t *testing.T) {
	base := Options{Blob: &hookStore{}, Manifest: &MemoryManifest{}}
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, mod := range map[string]func(*Options){
		"no blob":          func(o *Options) { o.Blob = nil },
		"no manifest":      func(o *Options) { o.Manifest = nil },
		"tiny chunk":       func(o *Options) { o.ChunkSize = 100 },
		"huge chunk":       func(o *Options) { o.ChunkSize = MaxChunkSize + 1 },
		"small spool":      func(o *Options) { o.SpoolBytes = 3 * 256 << 10 },
		"high water > max": func(o *Options) { o.HighWater = 65 << 20 },
		"negative stall":   func(o *Options) { o.MaxStall = -1 },
		"negative workers": func(o *Options) { o.Workers = -1 },
	} {
		o := base
		mod(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted", name)
		}
	}
}

func TestMetricsLint(t *testing.T) {
	r := newRig(t, nil)
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if len(mfs) < 8 {
		t.Fatalf("only %d metric families registered", len(mfs))
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "sluice_recording_") {
			t.Errorf("metric %s lacks the sluice_recording_ prefix", mf.GetName())
		}
	}
	if got := r.metric("sluice_recording_spool_limit_bytes"); got != 64*MinChunkSize {
		t.Fatalf("spool limit gauge %v", got)
	}
}
