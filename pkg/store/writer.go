package store

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Writer errors.
var (
	// ErrOverloaded means the write queue is full: shed the request.
	ErrOverloaded = errors.New("write queue is full")
	// ErrClosed means the writer no longer takes records.
	ErrClosed = errors.New("writer is closed")
)

// Writer commits records in groups: each worker takes whatever is queued
// (without waiting for more, so a lone request is written at once), writes it
// in one transaction and answers each submitter after the commit.
type Writer struct {
	store    *Store
	queue    chan *job
	maxBatch int
	timeout  time.Duration
	logger   *slog.Logger
	observe  func(size int, took time.Duration, err error)

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	wg     sync.WaitGroup // the workers

	// stmt is writeBatch prepared (database/sql prepares it again on each
	// connection it runs on), so that a batch costs one round trip and no
	// planning. Prepared by the first batch that finds the database up.
	stmtMu sync.Mutex
	stmt   *sql.Stmt
}

type job struct {
	rec  *Record
	ctx  context.Context // the submitter's: once done, nobody waits for rec
	done chan outcome    // buffered: a worker never blocks on a gone submitter
}

type outcome struct {
	res Result
	err error
}

// WriterOptions tune a Writer.
type WriterOptions struct {
	QueueLen int           // bounded queue; full means ErrOverloaded
	Workers  int           // concurrent transactions
	MaxBatch int           // records per transaction at most
	Timeout  time.Duration // per transaction
	// Observe, if set, is called after every batch.
	Observe func(size int, took time.Duration, err error)
}

// NewWriter starts a Writer's workers. Close stops them after the queue is
// drained.
func NewWriter(s *Store, opts WriterOptions, logger *slog.Logger) *Writer {
	if opts.QueueLen <= 0 {
		opts.QueueLen = 4096
	}
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 500
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	w := &Writer{
		store: s, queue: make(chan *job, opts.QueueLen), maxBatch: opts.MaxBatch,
		timeout: opts.Timeout, logger: logger.With("component", "writer"), observe: opts.Observe,
	}
	w.wg.Add(opts.Workers)
	for range opts.Workers {
		go w.work() // owned by w: Close waits for it
	}
	return w
}

// Submit queues rec and waits until it is committed, or failed, or ctx is
// done. A record whose ctx is done before a worker takes it is not written;
// one already in a transaction is committed or not with it. It returns
// ErrOverloaded at once when the queue is full.
func (w *Writer) Submit(ctx context.Context, rec *Record) (Result, error) {
	j := &job{rec: rec, ctx: ctx, done: make(chan outcome, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return Result{}, ErrClosed
	}
	select {
	case w.queue <- j:
	default:
		w.mu.RUnlock()
		return Result{}, ErrOverloaded
	}
	w.mu.RUnlock()
	select {
	case o := <-j.done:
		return o.res, o.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// Queued returns how many records wait for a worker.
func (w *Writer) Queued() int { return len(w.queue) }

// Close stops taking records, writes everything queued and waits for the
// workers to finish.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	w.wg.Wait()
	if w.stmt != nil {
		w.stmt.Close()
	}
}

// prepared returns the prepared writeBatch, or nil if it cannot be
// prepared now; the batch then runs unprepared and reports why.
func (w *Writer) prepared(ctx context.Context) *sql.Stmt {
	w.stmtMu.Lock()
	defer w.stmtMu.Unlock()
	if w.stmt == nil {
		if st, err := w.store.db.PrepareContext(ctx, writeBatch); err == nil {
			w.stmt = st
		}
	}
	return w.stmt
}

func (w *Writer) work() {
	defer w.wg.Done()
	batch := make([]*job, 0, w.maxBatch)
	for j := range w.queue {
		batch = append(batch[:0], j)
	fill:
		for len(batch) < w.maxBatch {
			select {
			case j, ok := <-w.queue:
				if !ok {
					break fill
				}
				batch = append(batch, j)
			default:
				break fill
			}
		}
		w.flush(batch)
	}
}

func (w *Writer) flush(batch []*job) {
	// A record whose submitter stopped waiting (its deadline passed while
	// the database was slow, or the client left) was not acknowledged:
	// writing it now would store what the answer said was not stored.
	live := batch[:0:0]
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			j.done <- outcome{err: err}
			continue
		}
		live = append(live, j)
	}
	if batch = live; len(batch) == 0 {
		return
	}
	recs := make([]*Record, len(batch))
	for i, j := range batch {
		recs[i] = j.rec
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	results, err := w.store.writeBatch(ctx, w.prepared(ctx), recs)
	cancel()
	if w.observe != nil {
		w.observe(len(batch), time.Since(start), err)
	}
	if err != nil && len(batch) > 1 && !IsUnavailable(err) {
		// One bad record must not fail the others: write them one by one.
		w.logger.Warn("batch failed, retrying records singly", slog.Int("size", len(batch)), slog.Any("err", err))
		for _, j := range batch {
			w.flush([]*job{j})
		}
		return
	}
	for i, j := range batch {
		if err != nil {
			j.done <- outcome{err: err}
		} else {
			j.done <- outcome{res: results[i]}
		}
	}
}
