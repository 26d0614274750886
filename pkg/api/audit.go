package api

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/store"
)

// outcomeParam reads the outcome filter; an unknown outcome is a 400.
func outcomeParam(c echo.Context) (string, error) {
	oc := c.QueryParam("outcome")
	if oc != "" && !slices.Contains(outcome.All, oc) {
		return "", problem.New(http.StatusBadRequest, problem.Invalid, "unknown outcome; known: %s", strings.Join(outcome.All, ", "))
	}
	return oc, nil
}

// listAudit answers GET /api/v1/audit: every audit record, those of
// unknown keys included, newest first.
func (a *API) listAudit(c echo.Context) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	var f store.AuditFilter
	if f.Outcome, err = outcomeParam(c); err != nil {
		return err
	}
	if ip := c.QueryParam("source_ip"); ip != "" {
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			return problem.New(http.StatusBadRequest, problem.Invalid, "source_ip must be an IP address")
		}
		f.SourceIP = addr.String()
	}
	if s := c.QueryParam("since"); s != "" {
		if f.Since, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return problem.New(http.StatusBadRequest, problem.Invalid, "since must be an RFC 3339 time such as 2026-11-28T10:00:00Z")
		}
	}
	if ref := c.QueryParam("trigger"); ref != "" {
		t, err := a.store.GetTrigger(c.Request().Context(), ref)
		if err != nil {
			return storeErr(err, "trigger")
		}
		f.TriggerID = t.ID
	}
	rows, next, err := a.store.ListAllAudit(c.Request().Context(), f, p)
	if err != nil {
		return storeErr(err, "audit record")
	}
	if rows == nil {
		rows = []store.Audit{}
	}
	return c.JSON(http.StatusOK, list{Data: rows, NextCursor: nextCursor(next)})
}

// listActivity answers GET /api/v1/activity: management changes, newest
// first.
func (a *API) listActivity(c echo.Context) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	rows, next, err := a.store.ListActivity(c.Request().Context(), p)
	if err != nil {
		return storeErr(err, "activity")
	}
	if rows == nil {
		rows = []store.Activity{}
	}
	return c.JSON(http.StatusOK, list{Data: rows, NextCursor: nextCursor(next)})
}

// outboxView is the answer of GET /api/v1/outbox.
type outboxView struct {
	// Backlog counts events stored but not yet published; FirstPendingAt
	// is when the oldest of them arrived.
	Backlog        int64      `json:"backlog"`
	FirstPendingAt *time.Time `json:"first_pending_at"`
	// SetAside counts events NATS refused for good.
	SetAside int64 `json:"set_aside"`
}

// outboxStatus answers GET /api/v1/outbox.
func (a *API) outboxStatus(c echo.Context) error {
	ctx := c.Request().Context()
	pos, err := a.store.PublishPosition(ctx)
	if err != nil {
		return storeErr(err, "outbox")
	}
	var v outboxView
	if v.Backlog, v.FirstPendingAt, err = a.store.Backlog(ctx, pos); err != nil {
		return storeErr(err, "outbox")
	}
	if v.SetAside, err = a.store.CountSetAside(ctx); err != nil {
		return storeErr(err, "outbox")
	}
	return c.JSON(http.StatusOK, data{v})
}

// listSetAside answers GET /api/v1/outbox/set-aside.
func (a *API) listSetAside(c echo.Context) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	rows, err := a.store.ListSetAside(c.Request().Context(), p.Limit)
	if err != nil {
		return storeErr(err, "outbox")
	}
	if rows == nil {
		rows = []store.SetAside{}
	}
	return c.JSON(http.StatusOK, data{rows})
}

// retrySetAside answers POST /api/v1/outbox/set-aside/:event_id/retry: the
// publisher tries the event again at its next round.
func (a *API) retrySetAside(c echo.Context) error {
	ctx := c.Request().Context()
	sa, err := a.store.RequestRetry(ctx, c.Param("event_id"))
	if err != nil {
		return storeErr(err, "set-aside event")
	}
	if err := a.store.RecordActivity(ctx, "outbox.retry", sa.EventID); err != nil {
		return storeErr(err, "set-aside event")
	}
	return c.JSON(http.StatusAccepted, data{sa})
}
