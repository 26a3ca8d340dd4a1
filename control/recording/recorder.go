package recording

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-gw/sluice/control/blob"
)

// Chunk size limits.
const (
	MinChunkSize = 4 << 10
	MaxChunkSize = MaxFrameData
)

// Options configures a Recorder. Zero values take the defaults.
type Options struct {
	Blob     blob.Store // required
	Manifest Manifest   // required

	// ChunkSize is the most bytes (frames, headers included) in one chunk;
	// default 256 KiB, between MinChunkSize and MaxChunkSize.
	ChunkSize int
	// FlushInterval is how often partly filled chunks are sealed and
	// written, bounding how long recorded bytes wait in memory; default 1s.
	// Negative disables the timer (tests call Flush).
	FlushInterval time.Duration
	// SpoolBytes bounds the memory of recorded bytes not yet written, across
	// all sessions; default 64 MiB, at least 4 chunks.
	SpoolBytes int64
	// HighWater is the spool level above which Start refuses new sessions;
	// default 3/4 of SpoolBytes, which leaves the rest to running sessions.
	HighWater int64
	// MaxStall is how long a Write may wait for spool room before the
	// session's recording fails; default 5s.
	MaxStall time.Duration
	// Workers write chunks to the blob store in parallel; default 4.
	Workers int
	// BatchSize bounds the rows of one manifest write; default 256.
	BatchSize int
	// WriteTimeout bounds one blob Put or manifest write; default 30s.
	WriteTimeout time.Duration
	// Attempts is how often a blob Put or manifest write is tried before the
	// recordings it carries fail; default 3.
	Attempts int
	// RetryBackoff is the wait before the second attempt, doubled for each
	// further one; default 200ms.
	RetryBackoff time.Duration

	Clock      func() time.Time      // stamps frames without a time and chunks; default time.Now
	Registerer prometheus.Registerer // nil: metrics are kept but not registered
	Logger     *slog.Logger          // default slog.Default()
}

func (o Options) withDefaults() Options {
	if o.ChunkSize == 0 {
		o.ChunkSize = 256 << 10
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = time.Second
	}
	if o.SpoolBytes == 0 {
		o.SpoolBytes = 64 << 20
	}
	if o.HighWater == 0 {
		o.HighWater = o.SpoolBytes / 4 * 3
	}
	if o.MaxStall == 0 {
		o.MaxStall = 5 * time.Second
	}
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.BatchSize == 0 {
		o.BatchSize = 256
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.Attempts == 0 {
		o.Attempts = 3
	}
	if o.RetryBackoff == 0 {
		o.RetryBackoff = 200 * time.Millisecond
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports whether o, with defaults applied, can be used.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.Blob == nil:
		return errors.New("recording: no blob store")
	case o.Manifest == nil:
		return errors.New("recording: no manifest")
	case o.ChunkSize < MinChunkSize || o.ChunkSize > MaxChunkSize:
		return fmt.Errorf("recording: chunk size %d outside [%d, %d]", o.ChunkSize, MinChunkSize, MaxChunkSize)
	case o.SpoolBytes < 4*int64(o.ChunkSize):
		return fmt.Errorf("recording: spool of %d bytes is less than 4 chunks of %d", o.SpoolBytes, o.ChunkSize)
	case o.HighWater <= 0 || o.HighWater > o.SpoolBytes:
		return fmt.Errorf("recording: high-water mark %d outside (0, %d]", o.HighWater, o.SpoolBytes)
	case o.MaxStall < 0 || o.WriteTimeout < 0 || o.RetryBackoff < 0:
		return errors.New("recording: negative duration")
	case o.Workers < 0 || o.BatchSize < 0 || o.Attempts < 0:
		return errors.New("recording: negative count")
	}
	return nil
}

// Recorder records sessions. It is safe for concurrent use. Close it to
// write out everything recorded and stop its goroutines.
type Recorder struct {
	opts     Options
	blob     blob.Store
	manifest Manifest
	now      func() time.Time
	log      *slog.Logger
	m        *metrics
	spool    *spool
	q        *queue
	rows     chan pendingRow

	// ctx is canceled when Close gives up waiting, aborting blob and
	// manifest writes in flight.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	writers map[string]*Writer

	stopFlush chan struct{}
	flushDone chan struct{}
	workers   sync.WaitGroup
	committed chan struct{} // closed when the committer has exited
}

// pendingRow is a chunk written to the blob store whose manifest row is not
// yet committed.
type pendingRow struct {
	w   *Writer
	row Chunk
}

// New starts a Recorder: its flush timer, its blob workers and its manifest
// committer.
func New(opts Options) (*Recorder, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	m := newMetrics(opts.Registerer)
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{
		opts:      opts,
		blob:      opts.Blob,
		manifest:  opts.Manifest,
		now:       opts.Clock,
		log:       opts.Logger,
		m:         m,
		spool:     newSpool(opts.SpoolBytes, m),
		q:         newQueue(),
		rows:      make(chan pendingRow, opts.BatchSize),
		ctx:       ctx,
		cancel:    cancel,
		writers:   map[string]*Writer{},
		stopFlush: make(chan struct{}),
		flushDone: make(chan struct{}),
		committed: make(chan struct{}),
	}
	for range opts.Workers {
		r.workers.Add(1)
		go r.worker()
	}
	go r.committer()
	go r.flusher()
	return r, nil
}

// endReserve is what Start reserves for the session's end chunk, so that
// Close can always record the end, however full the spool is.
const endReserve = chunkOverhead + FrameHeaderLen + maxReason

// Start opens the recording of a new session. If the spool is above its
// high-water mark it returns ErrSpoolFull and counts the refusal: the caller
// must refuse the session (fail closed), since it could not be recorded.
// A session id already being recorded is an error.
func (r *Recorder) Start(sessionID string) (*Writer, error) {
	if err := ValidateSessionID(sessionID); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if _, dup := r.writers[sessionID]; dup {
		return nil, fmt.Errorf("recording: session %s is already being recorded", sessionID)
	}
	if r.spool.used.Load()+endReserve > r.opts.HighWater || !r.spool.tryAcquire(endReserve) {
		r.m.spoolRefused.Inc()
		r.log.Warn("recording refused: spool full", "session", sessionID,
			"spool_bytes", r.spool.used.Load(), "high_water", r.opts.HighWater)
		return nil, fmt.Errorf("%w: session %s refused", ErrSpoolFull, sessionID)
	}
	w := newWriter(r, sessionID)
	r.writers[sessionID] = w
	r.m.active.Inc()
	return w, nil
}

func (r *Recorder) forget(w *Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.writers[w.id] == w {
		delete(r.writers, w.id)
		r.m.active.Dec()
	}
}

func (r *Recorder) open() []*Writer {
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := make([]*Writer, 0, len(r.writers))
	for _, w := range r.writers {
		ws = append(ws, w)
	}
	return ws
}

// Flush seals every partly filled chunk so that it is written now. A
// session in the middle of a Write is skipped: its chunk is sealed when
// full, at the next flush, or at Close. The flush timer calls it.
func (r *Recorder) Flush() {
	for _, w := range r.open() {
		w.flush()
	}
}

func (r *Recorder) flusher() {
	defer close(r.flushDone)
	if r.opts.FlushInterval < 0 {
		<-r.stopFlush
		return
	}
	t := time.NewTicker(r.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.Flush()
		case <-r.stopFlush:
			return
		}
	}
}

// Close stops new recordings, ends the open ones (their end marker records
// that the recorder closed; sessions should be ended first), writes out
// everything spooled and stops the background goroutines. If ctx ends first,
// writes in flight are aborted, the recordings they carry are incomplete,
// and Close returns ctx's error once the goroutines have stopped.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.committed
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stopFlush)
	<-r.flushDone

	var wg sync.WaitGroup
	for _, w := range r.open() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.CloseWithError(errors.New("recorder closed"))
		}()
	}
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	var err error
	select {
	case <-ended:
	case <-ctx.Done():
		err = fmt.Errorf("recording: close: %w", ctx.Err())
		r.cancel()
		<-ended
	}
	r.q.close()
	r.workers.Wait()
	close(r.rows)
	<-r.committed
	r.cancel()
	return err
}

// worker writes chunks to the blob store.
func (r *Recorder) worker() {
	defer r.workers.Done()
	for {
		c, ok := r.q.pop()
		if !ok {
			return
		}
		r.write(c)
	}
}

func (r *Recorder) write(c *chunk) {
	w := c.w
	w.link(c)
	key := ChunkKey(w.id, c.seq)
	size := len(c.buf)
	err := r.retry("blob put "+key, r.m.blobErrors, func(ctx context.Context) error { return r.blob.Put(ctx, key, c.buf) })
	r.spool.release(c.charge)
	c.buf = nil
	if err != nil {
		w.fail(r.m.failedBlob, fmt.Errorf("%w: session %s: write chunk %d: %w", ErrRecordingFailed, w.id, c.seq, err))
		w.chunkDone()
		return
	}
	r.m.chunks.Inc()
	r.m.bytes.Add(float64(size))
	r.rows <- pendingRow{w: w, row: Chunk{
		SessionID:  w.id,
		Seq:        c.seq,
		Key:        key,
		Size:       int64(size),
		SHA256:     hexHash(c.sum),
		PrevSHA256: hexHash(c.prev),
		At:         c.at,
	}}
}

// committer writes manifest rows in batches: it blocks for one row, takes
// whatever else is already waiting (up to BatchSize) and commits them in one
// call. Under load batches grow by themselves; when idle a row is written
// alone, without waiting for a timer.
func (r *Recorder) committer() {
	defer close(r.committed)
	batch := make([]pendingRow, 0, r.opts.BatchSize)
	rows := make([]Chunk, 0, r.opts.BatchSize)
	for p := range r.rows {
		batch = append(batch[:0], p)
	fill:
		for len(batch) < r.opts.BatchSize {
			select {
			case p, ok := <-r.rows:
				if !ok {
					break fill
				}
				batch = append(batch, p)
			default:
				break fill
			}
		}
		rows = rows[:0]
		for _, p := range batch {
			rows = append(rows, p.row)
		}
		r.commit(batch, rows)
	}
}

func (r *Recorder) commit(batch []pendingRow, rows []Chunk) {
	r.m.batchRows.Observe(float64(len(rows)))
	err := r.retry("manifest add", r.m.manifestErrors, func(ctx context.Context) error { return r.manifest.AddRecordingChunks(ctx, rows) })
	var errs []error
	if errors.Is(err, ErrConflict) {
		// A retry whose earlier attempt did commit after all, or a real
		// conflict: settle it row by row.
		errs = r.reconcile(rows)
	}
	for i, p := range batch {
		e := err
		if errs != nil {
			e = errs[i]
		}
		if e != nil {
			p.w.fail(r.m.failedManifest, fmt.Errorf("%w: session %s: manifest row %d: %w", ErrRecordingFailed, p.row.SessionID, p.row.Seq, e))
		}
		p.w.chunkDone()
	}
}

// reconcile adds rows one at a time; a row that conflicts is fine if the
// manifest holds exactly it already.
func (r *Recorder) reconcile(rows []Chunk) []error {
	errs := make([]error, len(rows))
	stored := map[string][]Chunk{}
	for i, row := range rows {
		ctx, cancel := context.WithTimeout(r.ctx, r.opts.WriteTimeout)
		err := r.manifest.AddRecordingChunks(ctx, []Chunk{row})
		if errors.Is(err, ErrConflict) {
			list, ok := stored[row.SessionID]
			if !ok {
				list, err = r.manifest.ListRecordingChunks(ctx, row.SessionID)
				if err == nil {
					stored[row.SessionID] = list
				}
			}
			if ok || err == nil {
				err = fmt.Errorf("%w: a different row is stored", ErrConflict)
				for _, s := range list {
					if sameRow(s, row) {
						err = nil
						break
					}
				}
			}
		}
		cancel()
		errs[i] = err
	}
	return errs
}

func sameRow(a, b Chunk) bool {
	return a.SessionID == b.SessionID && a.Seq == b.Seq && a.Key == b.Key && a.Size == b.Size &&
		a.SHA256 == b.SHA256 && a.PrevSHA256 == b.PrevSHA256
}

// retry runs op up to Attempts times, each bounded by WriteTimeout, with
// doubling backoff between attempts, counting every failure in errs.
func (r *Recorder) retry(what string, errs prometheus.Counter, op func(ctx context.Context) error) error {
	var err error
	backoff := r.opts.RetryBackoff
	for attempt := range max(r.opts.Attempts, 1) {
		if attempt > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-r.ctx.Done():
				t.Stop()
				return err
			}
			backoff *= 2
		}
		ctx, cancel := context.WithTimeout(r.ctx, r.opts.WriteTimeout)
		err = op(ctx)
		cancel()
		if err == nil {
			return nil
		}
		errs.Inc()
		r.log.Warn("recording write failed", "op", what, "attempt", attempt+1, "of", max(r.opts.Attempts, 1), "error", err)
		if errors.Is(err, ErrConflict) || errors.Is(err, blob.ErrInvalidKey) || errors.Is(err, blob.ErrTooLarge) {
			return err // trying again cannot help
		}
	}
	return err
}
