package console

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/store"
)

// The audit log's live stream: how often it looks for new rows, how far
// back each look reaches (a row written by a slower transaction, on any
// instance, may carry an older id than one already sent), how often an
// idle stream says it is alive, and how often it checks that its session
// still stands.
const (
	streamPoll      = time.Second
	streamLookback  = 10 * time.Second
	streamHeartbeat = 15 * time.Second
	streamRecheck   = 2 * time.Second
	// streamWriteTimeout bounds each write to the client, in place of the
	// server's WriteTimeout, which would end the stream.
	streamWriteTimeout = 30 * time.Second
	// streamBatch is the most rows one look reads.
	streamBatch = 100
)

func (h *Console) auditRoutes(g *echo.Group) {
	g.GET("/audit", h.auditPage)
	g.GET("/audit/stream", h.auditStream)
}

// auditData is the audit log page.
type auditData struct {
	Rows     []auditRow
	Outcome  string
	Trigger  string
	Outcomes []string
	Triggers []string
	Pager    pager
	// Stream is the address of the live updates, on the first page only.
	Stream string
}

// auditFilter reads the page's filters as the API's query.
func auditFilter(c echo.Context) url.Values {
	q := url.Values{}
	if o := c.QueryParam("outcome"); o != "" {
		q.Set("outcome", o)
	}
	if t := c.QueryParam("trigger"); t != "" {
		q.Set("trigger", t)
	}
	return q
}

// auditPage answers GET /console/audit: every request the receiver
// answered, newest first, filtered by outcome and trigger, a page at a
// time. The first page follows new requests live (auditStream) when
// script runs; without it a reload shows them.
func (h *Console) auditPage(c echo.Context) error {
	q := auditFilter(c)
	d := auditData{Outcome: q.Get("outcome"), Trigger: q.Get("trigger"), Outcomes: outcome.All}
	refs, err := h.triggerRefs(c)
	if err != nil {
		return err
	}
	d.Triggers = refs
	api := url.Values{"limit": {strconv.Itoa(pageSize)}}
	for k, v := range q {
		api[k] = v
	}
	cursor := c.QueryParam("cursor")
	if cursor != "" {
		api.Set("cursor", cursor)
	}
	var rows []store.Audit
	next, err := h.callList(c, "/api/v1/audit", api, &rows)
	if err != nil {
		return err
	}
	d.Rows = make([]auditRow, len(rows))
	for i := range rows {
		d.Rows[i] = auditRow{rows[i]}
	}
	d.Pager = newPager("/console/audit", q, cursor, next)
	if cursor == "" {
		sq := url.Values{}
		for k, v := range q {
			sq[k] = v
		}
		var last int64
		for _, r := range d.Rows {
			last = max(last, r.ID)
		}
		sq.Set("after", strconv.FormatInt(last, 10))
		d.Stream = "/console/audit/stream?" + sq.Encode()
	}
	title := "Audit log"
	if d.Trigger != "" {
		title = "Audit log of " + d.Trigger
	}
	return h.render(c, http.StatusOK, "audit", view{Title: title, Section: "audit", Data: d})
}

// triggerRefs lists every trigger's ref, for the filters.
func (h *Console) triggerRefs(c echo.Context) ([]string, error) {
	var ts []struct {
		Ref string `json:"ref"`
	}
	if err := h.call(c, http.MethodGet, "/api/v1/triggers", nil, &ts); err != nil {
		return nil, err
	}
	refs := make([]string, len(ts))
	for i, t := range ts {
		refs[i] = t.Ref
	}
	return refs, nil
}

// auditStream answers GET /console/audit/stream with Server-Sent Events:
// each audit row written after the row "after" (or the Last-Event-ID of a
// reconnecting client) that matches the filters, as an "audit" event
// whose data is the row's HTML, oldest first. It reads the rows through
// the management API about every second, so it sees what any instance
// wrote. The stream ends when the client goes, when the session ends, or
// when the server shuts down (Close); the handler's goroutine is its only
// one.
func (h *Console) auditStream(c echo.Context) error {
	q := auditFilter(c)
	after, _ := strconv.ParseInt(c.QueryParam("after"), 10, 64)
	if id, err := strconv.ParseInt(c.Request().Header.Get("Last-Event-ID"), 10, 64); err == nil {
		after = max(after, id)
	}
	api := url.Values{"limit": {strconv.Itoa(streamBatch)}}
	for k, v := range q {
		api[k] = v
	}
	// A filter the API refuses is refused before the stream starts.
	var rows []store.Audit
	look := func() error {
		api.Set("since", time.Now().Add(-streamLookback).UTC().Format(time.RFC3339Nano))
		rows = rows[:0]
		_, err := h.callList(c, "/api/v1/audit", api, &rows)
		return err
	}
	if err := look(); err != nil {
		return err
	}
	page := h.pages.byName["audit"]
	ctx := c.Request().Context()
	w := c.Response()
	rc := http.NewResponseController(w)
	// The server's read deadline would cancel the request's context
	// while the stream runs.
	if err := rc.SetReadDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	hdr := w.Header()
	hdr.Set(echo.HeaderContentType, "text/event-stream; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no") // a proxy in front must not hold events back
	w.WriteHeader(http.StatusOK)

	sid := sessionOf(c).id
	sent := map[int64]time.Time{} // ids sent that a look may return again, by received_at
	var buf bytes.Buffer
	buf.WriteString("retry: 3000\n\n")
	poll := time.NewTicker(streamPoll)
	defer poll.Stop()
	lastWrite, lastCheck := time.Now(), time.Now()
	for {
		for i := len(rows) - 1; i >= 0; i-- {
			r := &rows[i]
			if r.ID <= after {
				continue
			}
			if _, ok := sent[r.ID]; ok {
				continue
			}
			sent[r.ID] = r.ReceivedAt
			var row bytes.Buffer
			if err := page.ExecuteTemplate(&row, "auditrow", auditRow{*r}); err != nil {
				return fmt.Errorf("render audit row %d: %w", r.ID, err)
			}
			fmt.Fprintf(&buf, "id: %d\nevent: audit\n", r.ID)
			for _, line := range strings.Split(strings.TrimSpace(row.String()), "\n") {
				fmt.Fprintf(&buf, "data: %s\n", line)
			}
			buf.WriteByte('\n')
		}
		if buf.Len() == 0 && time.Since(lastWrite) >= streamHeartbeat {
			buf.WriteString(": alive\n\n")
		}
		if buf.Len() > 0 {
			if err := rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return nil
			}
			if _, err := w.Write(buf.Bytes()); err != nil {
				return nil // the client went
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
			buf.Reset()
			lastWrite = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-h.stop.done():
			return nil
		case <-poll.C:
		}
		if time.Since(lastCheck) >= streamRecheck {
			// Sign-out, expiry or a revoked token end the stream too.
			if _, _, err := h.store.GetSession(ctx, sid); err != nil {
				if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
					h.log.Warn("audit stream: cannot check its session", slog.Any("err", err))
				}
				return nil
			}
			lastCheck = time.Now()
		}
		oldest := time.Now().Add(-2 * streamLookback)
		for id, at := range sent {
			if at.Before(oldest) {
				delete(sent, id)
			}
		}
		if err := look(); err != nil {
			if ctx.Err() == nil {
				h.log.Warn("audit stream: cannot read the audit log", slog.Any("err", err))
			}
			return nil
		}
	}
}

// auditRow is an audit record as a row of the audit log.
type auditRow struct{ store.Audit }

// Events is how many events the request stored, -1 for none recorded.
func (r auditRow) Events() int {
	if r.EventCount == nil {
		return -1
	}
	return *r.EventCount
}
