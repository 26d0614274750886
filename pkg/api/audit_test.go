package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/store"
)

// TestGlobalAudit: every audit record, unknown keys included, newest first,
// with the filters of the contract and a cursor.
func TestGlobalAudit(t *testing.T) {
	v := newEnv(t)
	push := v.createTrigger("github.push")
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	v.seedAudit(push, start, 5, []string{outcome.BadSignature})
	unknown := []*store.Record{
		{Audit: store.Audit{ReceivedAt: start.Add(time.Minute), KeyPrefix: "wh_guess", SourceIP: "198.51.100.7", Status: 404, Outcome: outcome.NotFound, Count: 40}},
	}
	if _, err := v.store.WriteBatch(context.Background(), unknown); err != nil {
		t.Fatal(err)
	}
	type page struct {
		Data       []store.Audit `json:"data"`
		NextCursor *string       `json:"next_cursor"`
	}
	var p page
	v.call(http.MethodGet, "/api/v1/audit", "", http.StatusOK, &p)
	if len(p.Data) != 6 || p.Data[0].TriggerRef != nil || p.Data[0].Count != 40 || p.NextCursor != nil {
		t.Fatalf("GET /api/v1/audit = %d records, first %+v, want 6 with the unknown key's first", len(p.Data), p.Data[0])
	}
	for _, tt := range []struct {
		query string
		want  int
	}{
		{"outcome=not_found", 1},
		{"outcome=bad_signature", 5},
		{"trigger=github.push", 5},
		{"source_ip=198.51.100.7", 1},
		{"since=" + url.QueryEscape(start.Add(3*time.Second).Format(time.RFC3339)), 3},
	} {
		v.call(http.MethodGet, "/api/v1/audit?"+tt.query, "", http.StatusOK, &p)
		if len(p.Data) != tt.want {
			t.Errorf("GET /api/v1/audit?%s = %d records, want %d", tt.query, len(p.Data), tt.want)
		}
	}
	var seen int
	cursor := ""
	for range 10 {
		v.call(http.MethodGet, "/api/v1/audit?limit=2"+cursor, "", http.StatusOK, &p)
		seen += len(p.Data)
		if p.NextCursor == nil {
			break
		}
		cursor = "&cursor=" + *p.NextCursor
	}
	if seen != 6 {
		t.Errorf("paging 2 at a time saw %d records, want 6", seen)
	}
	for _, q := range []string{"outcome=nope", "source_ip=nope", "since=yesterday", "cursor=***", "limit=0"} {
		if rec := v.do(http.MethodGet, "/api/v1/audit?"+q, ""); rec.Code != http.StatusBadRequest {
			t.Errorf("GET /api/v1/audit?%s = %d, want 400", q, rec.Code)
		}
	}
	if rec := v.do(http.MethodGet, "/api/v1/audit?trigger=no.such", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET /api/v1/audit?trigger=no.such = %d, want 404", rec.Code)
	}
}

// TestTamperedCursors: a cursor inlet did not make is a 400 on every list,
// never a 500.
func TestTamperedCursors(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("github.push")
	bad := []string{
		"***",
		store.Cursor{At: time.Unix(0, 0), ID: "abc"}.String(), // not an audit id
		"MzAwMDAwMDAwMDAwMDAwMDAwOjk",                         // a time beyond year 9999
		"LTYzMDAwMDAwMDAwMDAwMDAwOjE",                         // and before year 1
		"MTcwMDAwMDAwMDAwMDAwMDoBYg",                          // an id with a control character
	}
	for _, path := range []string{"/api/v1/events", "/api/v1/audit", "/api/v1/activity", "/api/v1/triggers/github.push/webhooks/log"} {
		for _, c := range bad {
			rec := v.do(http.MethodGet, path+"?cursor="+url.QueryEscape(c), "")
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "invalid cursor") {
				t.Errorf("GET %s?cursor=%s = %d %s, want 400 invalid cursor", path, c, rec.Code, rec.Body)
			}
		}
	}
}

// TestWebhookStatsCountNoAuditRows: the statistics of GET and PATCH
// .../webhooks come from counters kept by the writer; they never scan the
// audit log, however long it is.
func TestWebhookStatsCountNoAuditRows(t *testing.T) {
	v := newEnv(t)
	tr := v.createTrigger("github.push")
	v.seedAudit(tr, time.Now().Add(-10*time.Minute), 30, []string{outcome.RateLimited, outcome.BadSignature})
	v.seedEvents(tr, time.Now().Add(-5*time.Minute), `{"a":1}`, `{"a":2}`)
	scans := func() int64 {
		var n int64
		// The statistics collector reports a backend's scans when its
		// transaction ends; reading them clears this backend's snapshot.
		db := v.store.DB()
		if _, err := db.Exec(`SELECT pg_stat_clear_snapshot()`); err != nil {
			t.Fatal(err)
		}
		if err := db.Get(&n, `SELECT COALESCE(seq_scan, 0) + COALESCE(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'audit_log'`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var w struct{ Data Webhook }
	time.Sleep(1100 * time.Millisecond) // the seeding's statistics arrive first
	before := scans()
	v.call(http.MethodGet, "/api/v1/triggers/github.push/webhooks", "", http.StatusOK, &w)
	v.call(http.MethodPatch, "/api/v1/triggers/github.push/webhooks", `{"rate_limit":{"requests":7}}`, http.StatusOK, nil)
	time.Sleep(1100 * time.Millisecond) // statistics reach the collector at most a second late
	if after := scans(); after != before {
		t.Errorf("GET and PATCH of the webhook scanned audit_log %d times", after-before)
	}
	if w.Data.Stats.Requests[outcome.RateLimited] != 15 || w.Data.Stats.Requests[outcome.BadSignature] != 15 ||
		w.Data.Stats.Requests[outcome.Accepted] != 2 || w.Data.TotalEvents != 2 || w.Data.LastUsedAt == nil {
		t.Errorf("stats = %+v, total %d, last used %v", w.Data.Stats.Requests, w.Data.TotalEvents, w.Data.LastUsedAt)
	}
}

// TestOutboxRoutes: the publishing status and the set-aside list, and a
// retry of an event that is not set aside is a 404.
func TestOutboxRoutes(t *testing.T) {
	v := newEnv(t)
	tr := v.createTrigger("github.push")
	ids := v.seedEvents(tr, time.Now().Add(-time.Minute), `{"a":1}`, `{"a":2}`)
	var st struct{ Data outboxView }
	v.call(http.MethodGet, "/api/v1/outbox", "", http.StatusOK, &st)
	if st.Data.Backlog != 2 || st.Data.FirstPendingAt == nil || st.Data.SetAside != 0 {
		t.Errorf("outbox = %+v, want 2 waiting since the first event", st.Data)
	}
	if rec := v.do(http.MethodPost, "/api/v1/outbox/set-aside/"+ids[0]+"/retry", ""); rec.Code != http.StatusNotFound {
		t.Errorf("retry of an event that is not set aside = %d, want 404", rec.Code)
	}
	raw := v.call(http.MethodGet, "/api/v1/outbox/set-aside", "", http.StatusOK, nil)
	if strings.TrimSpace(string(raw)) != `{"data":[]}` {
		t.Errorf("set-aside list = %s, want empty", raw)
	}
}
