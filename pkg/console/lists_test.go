package console

import (
	"net/url"
	"testing"
	"time"
)

func TestNewPager(t *testing.T) {
	tests := []struct {
		name          string
		q             url.Values
		cursor, next  string
		newest, older string
	}{
		{name: "only page", q: url.Values{}},
		{name: "first of several", q: url.Values{"outcome": {"accepted"}}, next: "Nx",
			older: "/console/audit?cursor=Nx&outcome=accepted"},
		{name: "middle", q: url.Values{"outcome": {"accepted"}, "trigger": {""}}, cursor: "C1", next: "C2",
			newest: "/console/audit?outcome=accepted", older: "/console/audit?cursor=C2&outcome=accepted"},
		{name: "last", q: nil, cursor: "C1", newest: "/console/audit"},
		{name: "escaped", q: url.Values{"trigger": {"a&b"}}, next: "x y",
			older: "/console/audit?cursor=x+y&trigger=a%26b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newPager("/console/audit", tt.q, tt.cursor, tt.next)
			if got.Newest != tt.newest || got.Older != tt.older {
				t.Errorf("newPager = %+v, want Newest %q, Older %q", got, tt.newest, tt.older)
			}
		})
	}
}

func TestShortDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{10 * time.Second, "10 s"},
		{90 * time.Second, "90 s"},
		{5 * time.Minute, "5 min"},
		{90 * time.Minute, "90 min"},
		{2 * time.Hour, "2 h"},
		{24 * time.Hour, "1 day"},
		{72 * time.Hour, "3 days"},
	}
	for _, tt := range tests {
		if got := shortDuration(tt.d); got != tt.want {
			t.Errorf("shortDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestRetrySchedule(t *testing.T) {
	if got := retrySchedule(nil); got != "no retries" {
		t.Errorf("retrySchedule(nil) = %q", got)
	}
	if got, want := retrySchedule([]int{10, 60, 300, 7200}), "10 s, 1 min, 5 min, 2 h"; got != want {
		t.Errorf("retrySchedule = %q, want %q", got, want)
	}
}

func TestCloseEndsStreams(t *testing.T) {
	var s shutdown
	done := s.done()
	select {
	case <-done:
		t.Fatal("done before close")
	default:
	}
	s.close()
	s.close() // twice is fine
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("close did not close done")
	}
	if s.done() != done {
		t.Error("done changed after close")
	}
}
