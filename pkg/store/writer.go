package store

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"math/rand/v2"
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
//
// It keeps two queues. Records that must be committed before their request
// is answered (accepted events, and handshakes) go through Submit and are
// written first. Audit records of rejected requests go through RecordAudit,
// which never waits: they fill whatever room batches of events leave, and a
// source repeating the same rejection faster than an audit row a second is
// folded, beyond a small burst, into one row per second with a count (see
// floods). So a flood of rejections neither costs a row each nor crowds
// events out, and every request still leaves a record an operator can
// query.
type Writer struct {
	store    *Store
	events   chan *job
	audits   chan Audit
	floods   *floods
	maxBatch int
	timeout  time.Duration
	logger   *slog.Logger
	observe  func(size int, took time.Duration, err error)
	folded   func(n int)
	dropped  func(n int)

	// unsettled are requests answered 503 whose batch may still have
	// committed; see settle.
	unsettledMu sync.Mutex
	unsettled   []unsettled

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	wg     sync.WaitGroup // the workers and the flood flusher
	stop   chan struct{}  // closed by Close: the flood flusher's last round

	// stmt is writeBatch prepared (database/sql prepares it again on each
	// connection it runs on), so that a batch costs one round trip and no
	// planning. Prepared by the first batch that finds the database up.
	stmtMu sync.Mutex
	stmt   *sql.Stmt
}

type job struct {
	rec  *Record
	ctx  context.Context // the submitter's: once done, nobody waits for rec
	done chan answer     // buffered: a worker never blocks on a gone submitter
}

type answer struct {
	res Result
	err error
}

// WriterOptions tune a Writer.
type WriterOptions struct {
	QueueLen      int           // bounded queue of events; full means ErrOverloaded
	AuditQueueLen int           // bounded queue of audit records; full means folded (default 8192)
	Workers       int           // concurrent transactions
	MaxBatch      int           // records per transaction at most
	Timeout       time.Duration // per transaction
	// FloodRate is how many identical rejections a second one source may
	// have recorded one row each (after a burst of twice as many), before
	// they are counted into one row a second; default 10.
	FloodRate int
	// Observe, if set, is called after every batch.
	Observe func(size int, took time.Duration, err error)
	// Aggregated, if set, is told how many requests each folded audit row
	// stands for beyond the first; Dropped how many audit records could
	// not be kept at all (the writer closed, or the fold table full while
	// the database was down for long).
	Aggregated func(n int)
	Dropped    func(n int)
}

// NewWriter starts a Writer's workers. Close stops them after the queues
// are drained.
func NewWriter(s *Store, opts WriterOptions, logger *slog.Logger) *Writer {
	if opts.QueueLen <= 0 {
		opts.QueueLen = 4096
	}
	if opts.AuditQueueLen <= 0 {
		opts.AuditQueueLen = 8192
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
	if opts.FloodRate <= 0 {
		opts.FloodRate = 10
	}
	nop := func(int) {}
	if opts.Aggregated == nil {
		opts.Aggregated = nop
	}
	if opts.Dropped == nil {
		opts.Dropped = nop
	}
	w := &Writer{
		store: s, events: make(chan *job, opts.QueueLen), audits: make(chan Audit, opts.AuditQueueLen),
		maxBatch: opts.MaxBatch, timeout: opts.Timeout, logger: logger.With("component", "writer"),
		observe: opts.Observe, folded: opts.Aggregated, dropped: opts.Dropped, stop: make(chan struct{}),
		floods: newFloods(opts.FloodRate),
	}
	w.wg.Add(opts.Workers + 1)
	for range opts.Workers {
		go w.work(rand.Int32N(1 << 20)) // owned by w: Close waits for it
	}
	go w.flushFloods() // owned by w: Close stops it and waits for it
	return w
}

// Submit queues rec and waits until it is committed, or failed, or ctx is
// done. A record whose ctx is done before a worker takes it is not written;
// one already in a transaction is committed or not with it. It returns
// ErrOverloaded at once when the queue is full.
func (w *Writer) Submit(ctx context.Context, rec *Record) (Result, error) {
	j := &job{rec: rec, ctx: ctx, done: make(chan answer, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return Result{}, ErrClosed
	}
	select {
	case w.events <- j:
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

// RecordAudit queues the audit record of a request that stored nothing,
// and returns at once. The record is written within about a second, in a
// row of its own, or, while its source repeats the same rejection faster
// than the flood rate or the queue is full, counted into one row a second
// (Audit.Count). It is safe for concurrent use.
func (w *Writer) RecordAudit(a Audit) {
	if a.Count < 1 {
		a.Count = 1
	}
	if w.floods.fold(a, false) {
		return
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.dropped(a.Count)
		return
	}
	select {
	case w.audits <- a:
	default:
		w.floods.fold(a, true)
	}
}

// Queued returns how many events wait for a worker.
func (w *Writer) Queued() int { return len(w.events) }

// Capacity returns the length of the events queue.
func (w *Writer) Capacity() int { return cap(w.events) }

// Close stops taking records, writes everything queued, including the
// folded audit rows, and waits for the workers to finish.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.events)
		close(w.stop)
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

// work writes batches until the writer closes. slot keeps the worker's
// statistics rows apart from those of writers that run concurrently.
func (w *Writer) work(slot int32) {
	defer w.wg.Done()
	jobs := make([]*job, 0, w.maxBatch)
	audits := make([]Audit, 0, w.maxBatch)
	for {
		jobs, audits = jobs[:0], audits[:0]
		select {
		case j, ok := <-w.events:
			if !ok {
				w.drainAudits(slot)
				return
			}
			jobs = append(jobs, j)
		case a := <-w.audits:
			audits = append(audits, a)
		}
		// Events first, then audit records in the room left.
	events:
		for len(jobs)+len(audits) < w.maxBatch {
			select {
			case j, ok := <-w.events:
				if !ok {
					break events
				}
				jobs = append(jobs, j)
			default:
				break events
			}
		}
	audits:
		for len(jobs)+len(audits) < w.maxBatch {
			select {
			case a := <-w.audits:
				audits = append(audits, a)
			default:
				break audits
			}
		}
		w.flush(jobs, audits, slot)
	}
}

// drainAudits writes what the audit queue holds once the writer closes.
func (w *Writer) drainAudits(slot int32) {
	for {
		var audits []Audit
	fill:
		for len(audits) < w.maxBatch {
			select {
			case a := <-w.audits:
				audits = append(audits, a)
			default:
				break fill
			}
		}
		if len(audits) == 0 {
			return
		}
		w.flush(nil, audits, slot)
	}
}

// flush writes jobs and audits in one transaction and answers the jobs.
func (w *Writer) flush(jobs []*job, audits []Audit, slot int32) {
	// A record whose submitter stopped waiting (its deadline passed while
	// the database was slow, or the client left) was not acknowledged:
	// writing it now would store what the answer said was not stored.
	live := jobs[:0:0]
	for _, j := range jobs {
		if err := j.ctx.Err(); err != nil {
			w.notStored(j, err)
			j.done <- answer{err: err}
			continue
		}
		live = append(live, j)
	}
	jobs = live
	if len(jobs)+len(audits) == 0 {
		return
	}
	recs := make([]*Record, 0, len(jobs)+len(audits))
	for _, j := range jobs {
		recs = append(recs, j.rec)
	}
	for i := range audits {
		recs = append(recs, &Record{Audit: audits[i]})
	}
	// The batch must not commit after its first submitter gave up waiting:
	// that request was answered 503.
	deadline := time.Now().Add(w.timeout)
	for _, j := range jobs {
		if d, ok := j.ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
	}
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	results, err := w.store.writeBatch(ctx, w.prepared(ctx), recs, slot, deadline)
	cancel()
	if w.observe != nil {
		w.observe(len(recs), time.Since(start), err)
	}
	if err != nil && len(recs) > 1 && !IsUnavailable(err) {
		// One bad record must not fail the others: write them one by one.
		w.logger.Warn("batch failed, retrying records singly", slog.Int("size", len(recs)), slog.Any("err", err))
		for _, j := range jobs {
			w.flush([]*job{j}, nil, slot)
		}
		for _, a := range audits {
			w.flush(nil, []Audit{a}, slot)
		}
		return
	}
	for i, j := range jobs {
		switch {
		case err == nil && j.ctx.Err() != nil:
			// Committed after its submitter stopped waiting: the request
			// was answered 503, and its audit row must say so.
			w.unsettle(j, true)
		case err != nil && IsUnavailable(err):
			// The commit's outcome is unknown: the database may have taken
			// the statement and commit it when it answers again.
			w.unsettle(j, false)
		case err != nil:
			w.notStored(j, err)
		}
		if err != nil {
			j.done <- answer{err: err}
		} else {
			j.done <- answer{res: results[i]}
		}
	}
	if err != nil && len(audits) > 0 {
		if IsUnavailable(err) {
			// Kept as counts until the database is back.
			for _, a := range audits {
				w.floods.fold(a, true)
			}
		} else {
			w.dropped(len(audits))
			w.logger.Warn("audit record not stored", slog.Any("err", err))
		}
	}
}

// flushFloods writes the folded audit rows every second, and a last time
// when the writer closes, and settles the audit rows of requests whose
// commit's outcome was unknown.
func (w *Writer) flushFloods() {
	defer w.wg.Done()
	t := time.NewTicker(floodWindow)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-w.stop:
			w.settle(time.Now().Add(settleAfter))
			w.writeFloods(time.Now())
			return
		}
		w.settle(time.Now())
		w.writeFloods(time.Now())
	}
}

// settleAfter is how long after a failed commit its outcome is looked up:
// a database that froze (rather than failed) commits what it had taken
// as soon as it runs again.
const settleAfter = 10 * time.Second

// maxUnsettled bounds the requests waiting to be settled; beyond it their
// rows are recorded as not stored at once.
const maxUnsettled = 10_000

// unsettled is a request answered 503 whose batch may have committed.
type unsettled struct {
	audit  Audit // the row to record: 503, outcome error
	stored bool  // its batch is known to have committed
	at     time.Time
}

// failedAudit is the audit row of a request answered 503 because its event
// could not be committed in time.
func failedAudit(a Audit, detail string) Audit {
	a.Status, a.Outcome, a.Detail, a.EventID, a.EventCount = 503, "error", detail, nil, nil
	return a
}

// notStored records the audit row of a job that was not written, unless
// its client left (nobody got an answer: there is nothing to record).
func (w *Writer) notStored(j *job, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	w.RecordAudit(failedAudit(j.rec.Audit, "storage is unavailable; retry later"))
}

func (w *Writer) unsettle(j *job, stored bool) {
	if errors.Is(j.ctx.Err(), context.Canceled) {
		return
	}
	u := unsettled{audit: failedAudit(j.rec.Audit, "storage is unavailable; retry later"), stored: stored, at: time.Now()}
	w.unsettledMu.Lock()
	full := len(w.unsettled) >= maxUnsettled
	if !full {
		w.unsettled = append(w.unsettled, u)
	}
	w.unsettledMu.Unlock()
	if full {
		w.RecordAudit(u.audit)
	}
}

// settle gives each request answered 503 whose commit's outcome was
// unknown exactly one audit row saying so: the row its batch wrote, if it
// committed after all (the event then exists, and the sender's retry is
// answered as its duplicate), or a new one. Requests are settled once
// settleAfter has passed since their failure (now stands for the time),
// and kept while the database does not answer.
func (w *Writer) settle(now time.Time) {
	w.unsettledMu.Lock()
	var due, rest []unsettled
	for _, u := range w.unsettled {
		if u.stored || now.Sub(u.at) >= settleAfter {
			due = append(due, u)
		} else {
			rest = append(rest, u)
		}
	}
	w.unsettled = rest
	w.unsettledMu.Unlock()
	for i, u := range due {
		ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
		found, err := w.store.markAnsweredUnavailable(ctx, u.audit, "stored after the request was answered 503: the database answered too late")
		cancel()
		if err != nil {
			w.unsettledMu.Lock()
			w.unsettled = append(w.unsettled, due[i:]...)
			w.unsettledMu.Unlock()
			return
		}
		if !found {
			w.RecordAudit(u.audit)
		}
	}
}

func (w *Writer) writeFloods(now time.Time) {
	rows := w.floods.take(now)
	if len(rows) == 0 {
		return
	}
	recs := make([]*Record, len(rows))
	for i := range rows {
		recs[i] = &Record{Audit: rows[i]}
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	_, err := w.store.writeBatch(ctx, nil, recs, -1, time.Time{})
	cancel()
	w.floods.logFailure(w.logger, err)
	if err != nil {
		// Counted again, to be written when the database answers.
		for _, a := range rows {
			w.floods.fold(a, true)
		}
		return
	}
	for _, a := range rows {
		w.folded(a.Count)
	}
}
