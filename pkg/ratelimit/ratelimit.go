// Package ratelimit keeps token buckets per key (a webhook's trigger, a
// source IP) with bounded memory: buckets that have refilled are dropped,
// since a full bucket is indistinguishable from a new one, and the number of
// buckets is capped.
package ratelimit

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const shards = 32

// Set is a collection of token buckets by key. It is safe for concurrent use.
type Set struct {
	seed   maphash.Seed
	shards [shards]shard
	max    int // buckets per shard at most
}

type shard struct {
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	swept   time.Time
}

// New returns a Set holding at most maxBuckets buckets.
func New(maxBuckets int) *Set {
	s := &Set{seed: maphash.MakeSeed(), max: max(1, maxBuckets/shards)}
	for i := range s.shards {
		s.shards[i].buckets = make(map[string]*rate.Limiter)
	}
	return s
}

// Allow takes a token from key's bucket, which refills at r per second up
// to burst. If none is left it returns false and how long until one is.
// A bucket whose rate or burst changed is adjusted in place.
func (s *Set) Allow(key string, r rate.Limit, burst int, now time.Time) (bool, time.Duration) {
	sh := &s.shards[maphash.String(s.seed, key)%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	lim, ok := sh.buckets[key]
	if !ok {
		sh.makeRoom(s.max, now)
		lim = rate.NewLimiter(r, burst)
		sh.buckets[key] = lim
	} else if lim.Limit() != r || lim.Burst() != burst {
		lim.SetLimitAt(now, r)
		lim.SetBurstAt(now, burst)
	}
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Duration(float64(time.Second) / float64(r))
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Exhausted reports whether key's bucket is empty, without taking a token.
func (s *Set) Exhausted(key string, now time.Time) bool {
	sh := &s.shards[maphash.String(s.seed, key)%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	lim, ok := sh.buckets[key]
	return ok && lim.TokensAt(now) < 1
}

// Len returns how many buckets are held.
func (s *Set) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}

// makeRoom drops full buckets once a minute, and when the shard is at its
// cap. If that frees too little, it drops arbitrary buckets down to seven
// eighths of the cap, so that the next sweep is max/8 new keys away and a
// flood of distinct keys costs O(1) per key, amortised. Losing those
// buckets' state is the price of bounded memory under such a flood.
func (sh *shard) makeRoom(max int, now time.Time) {
	if len(sh.buckets) < max && now.Sub(sh.swept) < time.Minute {
		return
	}
	sh.swept = now
	for k, lim := range sh.buckets {
		if lim.TokensAt(now) >= float64(lim.Burst()) {
			delete(sh.buckets, k)
		}
	}
	if len(sh.buckets) < max {
		return
	}
	keep := max - max/8 - 1
	for k := range sh.buckets {
		if len(sh.buckets) <= keep {
			break
		}
		delete(sh.buckets, k)
	}
}

// SourceKey returns the key a source address is budgeted under: the address
// itself for IPv4, and its /64 for IPv6, since whoever holds one IPv6
// address usually holds the whole /64 and can rotate through it for free.
// Anything that is not an address is its own key.
func SourceKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}
