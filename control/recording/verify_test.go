package recording

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// recorded makes a closed recording of id with about n chunks and returns
// its manifest rows.
func recorded(t *testing.T, r *rig, id string, n int) []Chunk {
	t.Helper()
	w := r.start(id)
	for i := range n - 1 {
		// A full chunk per write (MinChunkSize less one frame header).
		if err := w.Write(ClientToServer, t0.Add(time.Duration(i)*time.Millisecond), pattern(id, i, MinChunkSize-FrameHeaderLen)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rows, err := r.manifest.ListRecordingChunks(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != n {
		t.Fatalf("%s: %d chunks, want %d", id, len(rows), n)
	}
	if rep := r.verify(id); rep.Err() != nil {
		t.Fatalf("%s before tampering: %v", id, rep.Err())
	}
	return rows
}

// wantProblems checks that Verify reports exactly the given (kind, seq)
// problems, in order.
func wantProblems(t *testing.T, rep Report, want ...Problem) {
	t.Helper()
	var got []string
	for _, p := range rep.Problems {
		got = append(got, fmt.Sprintf("%s@%d-%d", p.Kind, p.Seq, p.Through))
	}
	var exp []string
	for _, p := range want {
		if p.Through == 0 {
			p.Through = p.Seq
		}
		exp = append(exp, fmt.Sprintf("%s@%d-%d", p.Kind, p.Seq, p.Through))
	}
	if !slices.Equal(got, exp) {
		t.Fatalf("problems %v, want %v\n%v", got, exp, rep.Problems)
	}
	if !errors.Is(rep.Err(), ErrCorrupt) {
		t.Fatalf("Err() = %v, want ErrCorrupt", rep.Err())
	}
}

// readErr reads the recording and returns Read's error and how many bytes it
// wrote before stopping.
func readErr(t *testing.T, r *rig, id string) (error, int) {
	t.Helper()
	var buf bytes.Buffer
	err := Read(context.Background(), r.blob, r.manifest, id, &buf)
	return err, buf.Len()
}

func TestVerifyTamperedChunk(t *testing.T) {
	r := newRig(t, nil)
	rows := recorded(t, r, "tamper", 6)
	ctx := context.Background()
	data, err := r.fs.Get(ctx, rows[3].Key)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01 // one bit, same size
	if err := r.fs.Put(ctx, rows[3].Key, data); err != nil {
		t.Fatal(err)
	}
	rep := r.verify("tamper")
	wantProblems(t, rep, Problem{Kind: ProblemHashMismatch, Seq: 3})
	if rep.Problems[0].Key != rows[3].Key {
		t.Fatalf("problem names %q, want %q", rep.Problems[0].Key, rows[3].Key)
	}
	if !rep.Complete {
		t.Fatal("the end marker is intact; Complete should say so")
	}
	err, n := readErr(t, r, "tamper")
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chunk 3") {
		t.Fatalf("Read: %v, want ErrCorrupt naming chunk 3", err)
	}
	if want := rows[0].Size + rows[1].Size + rows[2].Size; int64(n) != want {
		t.Fatalf("Read wrote %d bytes before stopping, want the %d of chunks 0-2", n, want)
	}
	var out strings.Builder
	if _, err := AuditVerify(ctx, r.blob, r.manifest, "tamper", &out); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("AuditVerify: %v", err)
	}
	if !strings.Contains(out.String(), "chunk 3 ("+rows[3].Key+"): hash_mismatch") || !strings.Contains(out.String(), "CORRUPT") {
		t.Fatalf("AuditVerify output:\n%s", out.String())
	}
}

func TestVerifyTruncatedObject(t *testing.T) {
	r := newRig(t, nil)
	rows := recorded(t, r, "trunc", 4)
	ctx := context.Background()
	data, _ := r.fs.Get(ctx, rows[1].Key)
	if err := r.fs.Put(ctx, rows[1].Key, data[:len(data)-100]); err != nil {
		t.Fatal(err)
	}
	wantProblems(t, r.verify("trunc"), Problem{Kind: ProblemSizeMismatch, Seq: 1}, Problem{Kind: ProblemHashMismatch, Seq: 1})
}

func TestVerifyDeletedObject(t *testing.T) {
	r := newRig(t, nil)
	rows := recorded(t, r, "delobj", 5)
	if err := r.fs.Delete(context.Background(), rows[2].Key); err != nil {
		t.Fatal(err)
	}
	rep := r.verify("delobj")
	wantProblems(t, rep, Problem{Kind: ProblemMissingObject, Seq: 2})
	if err, _ := readErr(t, r, "delobj"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chunk 2") {
		t.Fatalf("Read: %v", err)
	}
}

func TestVerifyDeletedRow(t *testing.T) {
	r := newRig(t, nil)
	rows := recorded(t, r, "delrow", 5)
	r.manifest.Delete("delrow", 1)
	r.manifest.Delete("delrow", 2)
	rep := r.verify("delrow")
	// The rows are gone, the objects are not: both are said.
	wantProblems(t, rep,
		Problem{Kind: ProblemMissingChunk, Seq: 1, Through: 2},
		Problem{Kind: ProblemOrphanObject, Seq: 1},
		Problem{Kind: ProblemOrphanObject, Seq: 2})
	if rep.Problems[1].Key != rows[1].Key {
		t.Fatalf("orphan %q, want %q", rep.Problems[1].Key, rows[1].Key)
	}
}

func TestVerifyReorderedRows(t *testing.T) {
	r := newRig(t, nil)
	recorded(t, r, "reorder", 5)
	// Rows 1 and 2 trade places: each now claims the other's seq.
	r.manifest.list = func(rows []Chunk) []Chunk {
		rows[1].Seq, rows[2].Seq = rows[2].Seq, rows[1].Seq
		return rows
	}
	rep := r.verify("reorder")
	if rep.Intact() {
		t.Fatal("reordered rows not detected")
	}
	for _, seq := range []int64{1, 2} {
		if !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Seq == seq }) {
			t.Errorf("no problem names chunk %d: %v", seq, rep.Problems)
		}
	}
	if err, _ := readErr(t, r, "reorder"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read: %v", err)
	}
}

func TestVerifySwappedObjects(t *testing.T) {
	r := newRig(t, nil)
	rows := recorded(t, r, "swap", 5)
	ctx := context.Background()
	a, _ := r.fs.Get(ctx, rows[1].Key)
	b, _ := r.fs.Get(ctx, rows[2].Key)
	r.fs.Put(ctx, rows[1].Key, b)
	r.fs.Put(ctx, rows[2].Key, a)
	wantProblems(t, r.verify("swap"), Problem{Kind: ProblemHashMismatch, Seq: 1}, Problem{Kind: ProblemHashMismatch, Seq: 2})
}

// An attacker who alters a chunk and rewrites its row's hash to match is
// caught by the next link.
func TestVerifyRewrittenRow(t *testing.T) {
	r := newRig(t, nil)
	rows := recorded(t, r, "rewrite", 5)
	ctx := context.Background()
	data, _ := r.fs.Get(ctx, rows[2].Key)
	copy(data[FrameHeaderLen:], "DROP TABLE evidence;")
	r.fs.Put(ctx, rows[2].Key, data)
	prev, _ := parseHash(rows[2].PrevSHA256)
	forged := hexHash(ChunkHash(prev, 2, data))
	r.manifest.list = func(rows []Chunk) []Chunk {
		rows[2].SHA256 = forged
		return rows
	}
	wantProblems(t, r.verify("rewrite"), Problem{Kind: ProblemChainBroken, Seq: 3})
}

// A row (and object) from another session's recording cannot stand in for
// one of this session's, even with its session id rewritten.
func TestVerifyRowFromAnotherSession(t *testing.T) {
	r := newRig(t, nil)
	recorded(t, r, "victim", 4)
	other := recorded(t, r, "other", 4)
	ctx := context.Background()
	data, _ := r.fs.Get(ctx, other[1].Key)
	r.fs.Put(ctx, ChunkKey("victim", 1), data)
	r.manifest.list = func(rows []Chunk) []Chunk {
		if len(rows) > 0 && rows[0].SessionID == "victim" {
			o := other[1]
			o.SessionID, o.Key = "victim", ChunkKey("victim", 1)
			rows[1] = o
		}
		return rows
	}
	// The transplanted chunk is self-consistent (its hash covers its own
	// prev), but it links to neither the victim's chunk 0 nor its chunk 2.
	wantProblems(t, r.verify("victim"), Problem{Kind: ProblemChainBroken, Seq: 1}, Problem{Kind: ProblemChainBroken, Seq: 2})
}

func TestVerifyDuplicateAndWrongKey(t *testing.T) {
	r := newRig(t, nil)
	recorded(t, r, "dup", 4)
	r.manifest.list = func(rows []Chunk) []Chunk {
		rows[3].Key = ChunkKey("dup", 0)
		return slices.Insert(rows, 2, rows[1])
	}
	wantProblems(t, r.verify("dup"), Problem{Kind: ProblemDuplicateSeq, Seq: 1}, Problem{Kind: ProblemWrongKey, Seq: 3})
}

// Losing the tail (the end marker with it) leaves an intact but incomplete
// recording: Verify says so rather than calling it fine.
func TestVerifyMissingEnd(t *testing.T) {
	r := newRig(t, nil)
	rows := recorded(t, r, "tail", 4)
	last := rows[len(rows)-1]
	r.manifest.Delete("tail", last.Seq)
	r.fs.Delete(context.Background(), last.Key)
	rep := r.verify("tail")
	if !rep.Intact() || rep.Complete {
		t.Fatalf("report %+v: want intact and incomplete", rep)
	}
	if !errors.Is(rep.Err(), ErrIncomplete) {
		t.Fatalf("Err() = %v, want ErrIncomplete", rep.Err())
	}
	if err, _ := readErr(t, r, "tail"); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Read: %v, want ErrIncomplete", err)
	}
	var out strings.Builder
	if _, err := AuditVerify(context.Background(), r.blob, r.manifest, "tail", &out); !errors.Is(err, ErrIncomplete) || !strings.Contains(out.String(), "INCOMPLETE") {
		t.Fatalf("AuditVerify: %v\n%s", err, out.String())
	}
}

// Chunks after the end marker, even correctly chained, are reported.
func TestVerifyAfterEnd(t *testing.T) {
	r := newRig(t, nil)
	rows := recorded(t, r, "after", 3)
	last := rows[len(rows)-1]
	prev, _ := parseHash(last.SHA256)
	payload := AppendFrame(nil, Frame{Kind: KindServer, At: t0, Data: []byte("smuggled")})
	extra := Chunk{SessionID: "after", Seq: last.Seq + 1, Key: ChunkKey("after", last.Seq+1), Size: int64(len(payload)),
		SHA256: hexHash(ChunkHash(prev, last.Seq+1, payload)), PrevSHA256: last.SHA256, At: t0}
	ctx := context.Background()
	r.fs.Put(ctx, extra.Key, payload)
	if err := r.manifest.MemoryManifest.AddRecordingChunks(ctx, []Chunk{extra}); err != nil {
		t.Fatal(err)
	}
	rep := r.verify("after")
	wantProblems(t, rep, Problem{Kind: ProblemAfterEnd, Seq: extra.Seq})
	if rep.Complete {
		t.Fatal("Complete with a chunk after the end")
	}
	if err, _ := readErr(t, r, "after"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read: %v", err)
	}
}

func TestVerifyNoRecording(t *testing.T) {
	r := newRig(t, nil)
	if _, err := Verify(context.Background(), r.blob, r.manifest, "nobody"); !errors.Is(err, ErrNoRecording) {
		t.Fatalf("Verify: %v, want ErrNoRecording", err)
	}
	if err, _ := readErr(t, r, "nobody"); !errors.Is(err, ErrNoRecording) {
		t.Fatalf("Read: %v, want ErrNoRecording", err)
	}
	if _, err := Verify(context.Background(), r.blob, r.manifest, "../etc"); err == nil || errors.Is(err, ErrNoRecording) {
		t.Fatalf("Verify of an invalid id: %v", err)
	}
}
