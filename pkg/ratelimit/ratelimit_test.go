package ratelimit

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestAllowSpendsAndRefills(t *testing.T) {
	s := New(1000)
	now := time.Unix(1000, 0)
	per := rate.Every(time.Second) // 1 token a second
	for i := 0; i < 3; i++ {
		if ok, _ := s.Allow("k", per, 3, now); !ok {
			t.Fatalf("Allow #%d = false, want true within the burst of 3", i+1)
		}
	}
	ok, wait := s.Allow("k", per, 3, now)
	if ok {
		t.Fatal("Allow after the burst = true, want false")
	}
	if wait <= 0 || wait > time.Second {
		t.Errorf("retry after = %v, want in (0, 1s]", wait)
	}
	if !s.Exhausted("k", now) {
		t.Error("Exhausted = false after the burst, want true")
	}
	if ok, _ := s.Allow("k", per, 3, now.Add(time.Second)); !ok {
		t.Error("Allow a second later = false, want a refilled token")
	}
	if ok, _ := s.Allow("other", per, 3, now); !ok {
		t.Error("Allow for another key = false, want its own bucket")
	}
}

func TestAllowAdjustsChangedLimit(t *testing.T) {
	s := New(1000)
	now := time.Unix(1000, 0)
	s.Allow("k", rate.Every(time.Second), 1, now)
	if ok, _ := s.Allow("k", rate.Every(time.Second), 1, now); ok {
		t.Fatal("second request within burst 1 allowed")
	}
	// Raising the limit takes effect on the existing bucket from then on.
	s.Allow("k", rate.Every(time.Millisecond), 100, now.Add(10*time.Millisecond))
	if ok, _ := s.Allow("k", rate.Every(time.Millisecond), 100, now.Add(20*time.Millisecond)); !ok {
		t.Error("Allow after raising the limit = false, want true")
	}
}

func TestMemoryStaysBoundedUnderAFloodOfKeys(t *testing.T) {
	const max = 3200
	s := New(max)
	now := time.Unix(1000, 0)
	perMin := rate.Every(time.Minute / 60)
	for i := 0; i < 200_000; i++ {
		// Each key spends one token: its bucket is not full, so only the
		// cap can evict it.
		s.Allow(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), perMin, 60, now)
	}
	if n := s.Len(); n > max {
		t.Errorf("Len() = %d after 200000 distinct keys, want <= %d", n, max)
	}
}

func TestRefilledBucketsAreDropped(t *testing.T) {
	s := New(1 << 20)
	now := time.Unix(1000, 0)
	for i := 0; i < 5000; i++ {
		s.Allow(fmt.Sprint("key", i), rate.Every(time.Second), 1, now)
	}
	// Long after, every bucket is full again; new traffic sweeps them out.
	later := now.Add(time.Hour)
	for i := 0; i < 2048; i++ {
		s.Allow(fmt.Sprint("new", i), rate.Every(time.Second), 1, later)
	}
	if n := s.Len(); n >= 5000 {
		t.Errorf("Len() = %d, want the 5000 refilled buckets dropped", n)
	}
}

func BenchmarkAllow(b *testing.B) {
	s := New(100000)
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.Allow(fmt.Sprint(i%1000), rate.Inf, 1, now)
			i++
		}
	})
}

func TestSourceKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not an address", "not an address"},
	}
	for _, tt := range tests {
		if got := SourceKey(tt.in); got != tt.want {
			t.Errorf("SourceKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
