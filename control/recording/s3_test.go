package recording

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/sluice-gw/sluice/control/blob/s3"
)

// The recorder over the S3 backend (an in-process gofakes3 server, a fake:
// see control/blob/s3's doc): recorded, verified, and a tampered object in
// the bucket is caught.
func TestRecordingOverS3(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("recs"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	defer srv.Close()
	cfg := s3.DefaultConfig()
	cfg.Endpoint, cfg.Bucket, cfg.Region, cfg.Prefix = srv.Listener.Addr().String(), "recs", "us-east-1", "sluice"
	cfg.AccessKey, cfg.SecretKey, cfg.TLS, cfg.PathStyle = "AKID", "secret", false, true
	st, err := s3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := &MemoryManifest{}
	rec, err := New(Options{Blob: st, Manifest: m, ChunkSize: MinChunkSize, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close(context.Background())
	w, err := rec.Start("s3sess")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := w.Write(ServerToClient, time.Time{}, pattern("s3", i*1000, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rep, err := Verify(ctx, st, m, "s3sess")
	if err != nil || rep.Err() != nil || rep.ServerBytes != 10000 {
		t.Fatalf("verify: %v %v %+v", err, rep.Err(), rep)
	}
	rows, _ := m.ListRecordingChunks(ctx, "s3sess")
	data, err := st.Get(ctx, rows[1].Key)
	if err != nil {
		t.Fatal(err)
	}
	data[20] ^= 0x80
	if err := st.Put(ctx, rows[1].Key, data); err != nil {
		t.Fatal(err)
	}
	rep, err = Verify(ctx, st, m, "s3sess")
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, rep, Problem{Kind: ProblemHashMismatch, Seq: 1})
}
