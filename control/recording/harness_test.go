package recording

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/sluice-gw/sluice/control/blob"
	"github.com/sluice-gw/sluice/control/blob/fs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rig is a Recorder over a real filesystem store and an in-memory manifest,
// with hooks to slow down or break either.
type rig struct {
	t        *testing.T
	rec      *Recorder
	fs       *fs.Store
	blob     *hookStore
	manifest *hookManifest
	reg      *prometheus.Registry
}

// hookStore is a blob.Store whose Put can be delayed or failed, and which
// records the highest spool level it saw.
type hookStore struct {
	blob.Store
	put      func(ctx context.Context, key string) error // nil: pass through
	spool    func() int64
	peak     atomic.Int64
	putCalls atomic.Int64
}

func (h *hookStore) Put(ctx context.Context, key string, data []byte) error {
	h.putCalls.Add(1)
	if h.spool != nil {
		for {
			v, p := h.spool(), h.peak.Load()
			if v <= p || h.peak.CompareAndSwap(p, v) {
				break
			}
		}
	}
	if h.put != nil {
		if err := h.put(ctx, key); err != nil {
			return err
		}
	}
	return h.Store.Put(ctx, key, data)
}

// hookManifest wraps a MemoryManifest: add can fail or delay a batch, list
// can rewrite what Verify sees (tampering with rows).
type hookManifest struct {
	MemoryManifest
	add     func(ctx context.Context, batch []Chunk) error // called before storing; an error stores nothing
	after   func(batch []Chunk) error                      // called after storing: an error here means "stored, but the caller was told otherwise"
	list    func([]Chunk) []Chunk
	mu      sync.Mutex
	batches []int
}

func (h *hookManifest) AddRecordingChunks(ctx context.Context, batch []Chunk) error {
	h.mu.Lock()
	h.batches = append(h.batches, len(batch))
	h.mu.Unlock()
	if h.add != nil {
		if err := h.add(ctx, batch); err != nil {
			return err
		}
	}
	if err := h.MemoryManifest.AddRecordingChunks(ctx, batch); err != nil {
		return err
	}
	if h.after != nil {
		return h.after(batch)
	}
	return nil
}

func (h *hookManifest) ListRecordingChunks(ctx context.Context, id string) ([]Chunk, error) {
	rows, err := h.MemoryManifest.ListRecordingChunks(ctx, id)
	if err == nil && h.list != nil {
		rows = h.list(rows)
	}
	return rows, err
}

func (h *hookManifest) batchSizes() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.batches...)
}

// newRig builds a rig; mod adjusts the options (small chunks and spool by
// default, timer off) before the Recorder starts.
func newRig(t *testing.T, mod func(*Options, *rig)) *rig {
	t.Helper()
	st, err := fs.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &rig{t: t, fs: st, blob: &hookStore{Store: st}, manifest: &hookManifest{}, reg: prometheus.NewRegistry()}
	opts := Options{
		Blob:          r.blob,
		Manifest:      r.manifest,
		ChunkSize:     MinChunkSize,
		FlushInterval: -1,
		SpoolBytes:    64 * MinChunkSize,
		RetryBackoff:  time.Millisecond,
		Registerer:    r.reg,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&opts, r)
	}
	rec, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.rec = rec
	r.blob.spool = rec.spool.used.Load
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rec.Close(ctx)
	})
	return r
}

func (r *rig) start(id string) *Writer {
	r.t.Helper()
	w, err := r.rec.Start(id)
	if err != nil {
		r.t.Fatalf("start %s: %v", id, err)
	}
	return w
}

func (r *rig) verify(id string) Report {
	r.t.Helper()
	rep, err := Verify(context.Background(), r.blob, r.manifest, id)
	if err != nil {
		r.t.Fatalf("verify %s: %v", id, err)
	}
	return rep
}

// metric returns the value of the series name{labels} in the rig's registry.
func (r *rig) metric(name string, labels ...string) float64 {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	r.t.Fatalf("no series %s%v", name, labels)
	return 0
}

// streams is what one session sent each way, as Read returns it.
type streams struct {
	client, server []byte
	frames         int
	end            *Frame
}

// readBack reads a recording with Read and decodes it.
func readBack(t *testing.T, st blob.Store, m Manifest, id string) (streams, error) {
	t.Helper()
	var buf bytes.Buffer
	rerr := Read(context.Background(), st, m, id, &buf)
	var s streams
	d := NewDecoder(&buf)
	for {
		f, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decode %s: %v", id, err)
		}
		if s.end != nil {
			t.Fatalf("%s: frame after the end frame", id)
		}
		s.frames++
		switch f.Kind {
		case KindClient:
			s.client = append(s.client, f.Data...)
		case KindServer:
			s.server = append(s.server, f.Data...)
		case KindEnd:
			e := f
			e.Data = bytes.Clone(f.Data)
			s.end = &e
		}
	}
	return s, rerr
}

// pattern returns n deterministic pseudo-random bytes of the stream named
// seed, from offset off: large expected streams need not be kept.
func pattern(seed string, off, n int) []byte {
	const block = 4 << 10
	out := make([]byte, 0, n)
	var buf [block]byte
	for len(out) < n {
		b := (off + len(out)) / block
		rand.NewChaCha8(sha256.Sum256([]byte(seed + ":" + strconv.Itoa(b)))).Read(buf[:])
		start := (off + len(out)) % block
		out = append(out, buf[start:min(block, start+n-len(out))]...)
	}
	return out
}

// eventually polls cond for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
