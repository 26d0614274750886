package receiver

import (
	"context"
	"fmt"
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
	enabled       bool
	keyExpiresAt  *time.Time
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
	loaded        time.Time
}

func compile(w store.Webhook, now time.Time) (*webhook, error) {
	t := w.Trigger
	s := t.Settings
	c := &webhook{
		triggerID: t.ID, ref: t.Ref, enabled: t.WebhookEnabled, keyExpiresAt: w.KeyExpiresAt,
		hmac: s.HMAC, hmacOn: s.HMAC.Enabled, limit: s.PayloadLimit(), loaded: now,
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
	return c, nil
}

// cache maps keys to compiled webhooks. Entries are dropped when the
// database announces a change to their trigger (on every instance, through
// LISTEN/NOTIFY), all of them when the listener reconnects (a notification
// may have been missed), and after ttl as a last resort.
type cache struct {
	load func(ctx context.Context, key string) (store.Webhook, error)
	ttl  time.Duration
	wait time.Duration // a miss's lookup gives up after this
	brk  *breaker      // misses are not loaded while it is open

	mu    sync.RWMutex
	byKey map[string]*webhook
	gen   uint64 // bumped by every invalidation; a load older than it is not kept
}

func newCache(load func(ctx context.Context, key string) (store.Webhook, error), ttl, wait time.Duration, brk *breaker) *cache {
	return &cache{load: load, ttl: ttl, wait: wait, brk: brk, byKey: make(map[string]*webhook)}
}

// get returns the webhook of a live key, store.ErrNotFound for an unknown or
// expired one.
func (c *cache) get(ctx context.Context, key string, now time.Time) (*webhook, error) {
	c.mu.RLock()
	w, ok := c.byKey[key]
	gen := c.gen
	c.mu.RUnlock()
	if ok && now.Sub(w.loaded) < c.ttl {
		if w.keyExpiresAt != nil && !now.Before(*w.keyExpiresAt) {
			return nil, store.ErrNotFound
		}
		return w, nil
	}
	sw, err := c.loadWithin(ctx, key)
	if err != nil {
		return nil, err
	}
	w, err = compile(sw, now)
	if err != nil {
		return nil, fmt.Errorf("compile settings of %s: %w", sw.Trigger.Ref, err)
	}
	c.mu.Lock()
	if c.gen == gen {
		c.byKey[key] = w
	}
	c.mu.Unlock()
	return w, nil
}

// loadWithin loads key, giving up when ctx ends. lib/pq cannot interrupt a
// read from a server that stopped answering, so the load runs on a
// goroutine of its own that the request can leave behind. Only misses pay
// for it, and such goroutines are bounded by the connection pool: each
// holds a connection, and the others wait for one in database/sql, which
// does honour ctx.
func (c *cache) loadWithin(ctx context.Context, key string) (store.Webhook, error) {
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
		w, err := c.load(ctx, key)
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

// invalidate drops the entries of the trigger whose id is payload, or every
// entry when payload is not an id.
func (c *cache) invalidate(payload string) {
	id, err := strconv.ParseInt(payload, 10, 64)
	if err != nil {
		c.reset()
		return
	}
	c.forget(id)
}

// forget drops the entries of one trigger.
func (c *cache) forget(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, w := range c.byKey {
		if w.triggerID == id {
			delete(c.byKey, k)
		}
	}
}

// reset drops every entry.
func (c *cache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.byKey)
}
