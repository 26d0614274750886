package receiver

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/inlet-dev/inlet/pkg/payload"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// webhook is a trigger's settings compiled for the hot path: CIDRs parsed,
// JSONPath and schema compiled once per change, not per request.
type webhook struct {
	triggerID     int64
	ref           string
	idKey         string // triggerID as a decimal string, the rate limiter's key
	enabled       bool
	hmac          trigger.HMAC
	hmacOn        bool
	limit         int64
	allow         []netip.Prefix // nil when the allowlist is off
	rateOn        bool
	rate          rate.Limit
	burst         int
	schema        *payload.Schema
	mapping       *payload.Mapping // nil when there is no mapping
	deliveryHdr   string
	deliveryExact bool // deliveryHdr was named by the operator: no fallback
	deliveryPath  *payload.Path
	split         *payload.Split // nil stores a body as one event
}

func compile(t trigger.Trigger) (*webhook, error) {
	s := t.Settings
	c := &webhook{
		triggerID: t.ID, ref: t.Ref, idKey: strconv.FormatInt(t.ID, 10), enabled: t.WebhookEnabled,
		hmac: s.HMAC, hmacOn: s.HMAC.Enabled, limit: s.PayloadLimit(),
	}
	if s.IPAllowlist.Enabled {
		p, err := s.IPAllowlist.Prefixes()
		if err != nil {
			return nil, err
		}
		c.allow = p
	}
	if s.RateLimit.Enabled && s.RateLimit.Requests > 0 && s.RateLimit.WindowSeconds > 0 {
		c.rateOn = true
		c.rate = rate.Limit(float64(s.RateLimit.Requests) / float64(s.RateLimit.WindowSeconds))
		c.burst = s.RateLimit.Requests
	}
	if len(t.PayloadSchema) > 0 {
		sch, err := payload.CompileSchema(t.PayloadSchema)
		if err != nil {
			return nil, fmt.Errorf("payload schema: %w", err)
		}
		c.schema = sch
	}
	if len(s.PayloadMapping) > 0 {
		m, err := payload.CompileMapping(s.PayloadMapping)
		if err != nil {
			return nil, fmt.Errorf("payload mapping: %w", err)
		}
		c.mapping = m
	}
	if err := c.setDeliveryID(s); err != nil {
		return nil, err
	}
	if s.Split != "" {
		sp, err := payload.CompileSplit(s.Split)
		if err != nil {
			return nil, fmt.Errorf("split: %w", err)
		}
		c.split = sp
	}
	return c, nil
}

// entry is a live key: its trigger's compiled webhook and the key itself.
type entry struct {
	wh        *webhook
	keyID     int64
	label     string
	expiresAt *time.Time
	// stale marks an entry whose trigger changed or that outlived the
	// cache's ttl: it is loaded again before use, but it still counts as a
	// known key, so that the protections against key guessing never refuse
	// it.
	stale  bool
	loaded time.Time
}

// cache maps every live key to its compiled webhook. It is filled with
// every live key at start (warm) and kept that way: a change to a trigger
// or its keys, announced on every instance through LISTEN/NOTIFY, marks
// that trigger's entries stale and loads its keys again in the background
// (so keys made on another instance become known within milliseconds); a
// listener that reconnects, having maybe missed notifications, reloads
// everything. A key the cache does not know is looked up in the database,
// where the caller applies the key-guessing budget first.
type cache struct {
	loadKey  func(ctx context.Context, key string) (store.Webhook, error)
	loadLive func(ctx context.Context, triggerID int64) ([]store.KeyedWebhook, error)
	ttl      time.Duration
	wait     time.Duration // a lookup gives up after this
	brk      *breaker      // lookups are not made while it is open
	logger   *slog.Logger

	mu    sync.RWMutex
	byKey map[string]*entry
	gen   uint64 // bumped by every invalidation; a load older than it is not kept

	wg sync.WaitGroup // background reloads; drain waits for them
}

func newCache(st *store.Store, ttl, wait time.Duration, brk *breaker, logger *slog.Logger) *cache {
	return &cache{
		loadKey: st.LookupKey, loadLive: st.LiveWebhooks, ttl: ttl, wait: wait, brk: brk, logger: logger,
		byKey: make(map[string]*entry),
	}
}

// known reports whether key is a key the cache holds, fresh or stale.
func (c *cache) known(key string) bool {
	c.mu.RLock()
	_, ok := c.byKey[key]
	c.mu.RUnlock()
	return ok
}

// get returns the entry of a live key, store.ErrNotFound for an unknown or
// expired one.
func (c *cache) get(ctx context.Context, key string, now time.Time) (*entry, error) {
	c.mu.RLock()
	e, ok := c.byKey[key]
	fresh := ok && !e.stale && now.Sub(e.loaded) < c.ttl
	gen := c.gen
	c.mu.RUnlock()
	if fresh {
		if e.expiresAt != nil && !now.Before(*e.expiresAt) {
			return nil, store.ErrNotFound
		}
		return e, nil
	}
	w, err := c.lookup(ctx, key)
	if err == store.ErrNotFound {
		c.mu.Lock()
		if c.gen == gen {
			delete(c.byKey, key)
		}
		c.mu.Unlock()
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	e, err = newEntry(w, now)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		c.byKey[key] = e
	}
	c.mu.Unlock()
	return e, nil
}

func newEntry(w store.Webhook, now time.Time) (*entry, error) {
	wh, err := compile(w.Trigger)
	if err != nil {
		return nil, fmt.Errorf("compile settings of %s: %w", w.Trigger.Ref, err)
	}
	return &entry{wh: wh, keyID: w.KeyID, label: w.KeyLabel, expiresAt: w.KeyExpiresAt, loaded: now}, nil
}

// lookup loads key, giving up when ctx ends. lib/pq cannot interrupt a
// read from a server that stopped answering, so the load runs on a
// goroutine of its own that the request can leave behind. Only misses pay
// for it, and such goroutines are bounded by the connection pool: each
// holds a connection, and the others wait for one in database/sql, which
// does honour ctx.
func (c *cache) lookup(ctx context.Context, key string) (store.Webhook, error) {
	type result struct {
		w   store.Webhook
		err error
	}
	if !c.brk.allow(time.Now()) {
		return store.Webhook{}, errOpen
	}
	ctx, cancel := context.WithTimeout(ctx, c.wait)
	defer cancel()
	done := make(chan result, 1) // buffered: a left-behind load never blocks
	go func() {
		w, err := c.loadKey(ctx, key)
		done <- result{w, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		r.err = ctx.Err()
	}
	c.brk.report(r.err, time.Now())
	return r.w, r.err
}

// warm loads every live key of trigger triggerID, or of all triggers when
// it is 0, replacing what the cache held for them. A trigger whose keys
// cannot be loaded keeps its stale entries, which requests load one by
// one.
func (c *cache) warm(ctx context.Context, triggerID int64) {
	c.mu.RLock()
	gen := c.gen
	c.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, 10*c.wait)
	defer cancel()
	live, err := c.loadLive(ctx, triggerID)
	if err != nil {
		c.logger.Warn("webhook keys not loaded", slog.Int64("trigger_id", triggerID), slog.Any("err", err))
		return
	}
	now := time.Now()
	fresh := make(map[string]*entry, len(live))
	compiled := make(map[int64]*webhook)
	for _, kw := range live {
		wh := compiled[kw.Trigger.ID]
		if wh == nil {
			if wh, err = compile(kw.Trigger); err != nil {
				c.logger.Warn("webhook settings do not compile", slog.String("trigger_ref", kw.Trigger.Ref), slog.Any("err", err))
				continue
			}
			compiled[kw.Trigger.ID] = wh
		}
		fresh[kw.Key] = &entry{wh: wh, keyID: kw.KeyID, label: kw.KeyLabel, expiresAt: kw.KeyExpiresAt, loaded: now}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return // changed again meanwhile; that change's reload follows
	}
	for k, e := range c.byKey {
		if triggerID == 0 || e.wh.triggerID == triggerID {
			delete(c.byKey, k)
		}
	}
	for k, e := range fresh {
		c.byKey[k] = e
	}
}

// changed marks trigger id's entries stale, so that none is used before it
// is loaded again, and reloads its keys in the background (owned by c:
// drain waits for it).
func (c *cache) changed(ctx context.Context, id int64) {
	c.mu.Lock()
	c.gen++
	for _, e := range c.byKey {
		if id == 0 || e.wh.triggerID == id {
			e.stale = true
		}
	}
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.warm(ctx, id)
	}()
}

// drain waits for background reloads.
func (c *cache) drain() { c.wg.Wait() }
