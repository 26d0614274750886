package store

import (
	"log/slog"
	"sync"
	"time"

	"github.com/inlet-dev/inlet/pkg/ratelimit"
)

// floodWindow is how often folded audit rows are written.
const floodWindow = time.Second

// maxFloods bounds the sources followed at once. Beyond it, records that
// must be folded are folded per outcome for all sources together.
const maxFloods = 20_000

// manySources stands for the source of a row that folds requests from more
// sources than maxFloods allows following.
const manySources = "*"

// floodKey is what makes rejections identical: the trigger, the outcome and
// status, and the source (an IPv4 address, or an IPv6 /64).
type floodKey struct {
	triggerID int64
	outcome   string
	status    int
	source    string
}

type flood struct {
	first  Audit     // the first request folded since the last write
	n      int       // requests folded since then
	tokens float64   // rows of their own still allowed
	seen   time.Time // when tokens were last refilled
}

// floods folds repeated rejections from one source into one audit row a
// second. Each source and rejection gets a small budget of rows of their
// own (a token bucket of rate a second, bursting to twice that); requests
// beyond it are counted, and take returns one row per flood with the count.
// It is safe for concurrent use.
type floods struct {
	mu      sync.Mutex
	m       map[floodKey]*flood
	rate    float64
	burst   float64
	now     func() time.Time
	failing bool // the last write failed; logged once per episode
}

func newFloods(rate int) *floods {
	return &floods{m: make(map[floodKey]*flood), rate: float64(rate), burst: 2 * float64(rate), now: time.Now}
}

func keyOf(a Audit) floodKey {
	k := floodKey{outcome: a.Outcome, status: a.Status, source: ratelimit.SourceKey(a.SourceIP)}
	if a.TriggerID != nil {
		k.triggerID = *a.TriggerID
	}
	return k
}

// fold counts a into its flood and reports true, unless a may still have a
// row of its own (false: the caller queues it). With force, a is counted
// whatever the budget, as when the queue is full or the database down.
func (f *floods) fold(a Audit, force bool) bool {
	k := keyOf(a)
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	fl := f.m[k]
	if fl == nil {
		if len(f.m) >= maxFloods {
			if !force {
				return false
			}
			k.source = manySources
			if fl = f.m[k]; fl == nil {
				fl = &flood{seen: now}
				f.m[k] = fl
			}
		} else {
			fl = &flood{tokens: f.burst, seen: now}
			f.m[k] = fl
		}
	}
	if d := now.Sub(fl.seen); d > 0 {
		fl.tokens = min(f.burst, fl.tokens+d.Seconds()*f.rate)
		fl.seen = now
	}
	if !force && fl.tokens >= 1 {
		fl.tokens--
		return false
	}
	if fl.n == 0 {
		fl.first = a
		if k.source == manySources {
			fl.first.SourceIP = manySources
		}
	}
	fl.n += max(a.Count, 1)
	return true
}

// take returns one row per flood that folded requests since the last take,
// with its count, and forgets sources that went quiet.
func (f *floods) take(now time.Time) []Audit {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rows []Audit
	for k, fl := range f.m {
		if fl.n > 0 {
			row := fl.first
			row.Count = fl.n
			rows = append(rows, row)
			fl.n = 0
			continue
		}
		if now.Sub(fl.seen).Seconds()*f.rate+fl.tokens >= f.burst {
			delete(f.m, k) // a full bucket is the same as no bucket
		}
	}
	return rows
}

// logFailure logs a failed write of folded rows once per episode (err nil
// ends one); the rows are folded again and written when the database
// answers.
func (f *floods) logFailure(logger *slog.Logger, err error) {
	f.mu.Lock()
	first := !f.failing
	f.failing = err != nil
	f.mu.Unlock()
	if first && err != nil {
		logger.Warn("audit rows kept as counts until the database answers", slog.Any("err", err))
	}
}
