package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/jsontext"
	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// MaxListBytes is about how much event data one page of GET /api/v1/events
// holds: a page stops, with a next_cursor, at the first event past it.
const MaxListBytes = 8 << 20

// listEvents answers GET /api/v1/events. Each event is the bytes of
// event.Event.Marshal, the form published to NATS.
func (a *API) listEvents(c echo.Context) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	ref := c.QueryParam("trigger")
	if ref != "" && !trigger.ValidRef(ref) {
		return problem.New(http.StatusBadRequest, problem.Invalid, `trigger must be a trigger ref such as "github.push"`)
	}
	evs, next, err := a.store.ListEvents(c.Request().Context(), ref, p, MaxListBytes)
	if err != nil {
		return storeErr(err, "event")
	}
	body := append(make([]byte, 0, 4096), `{"data":[`...)
	for i := range evs {
		if i > 0 {
			body = append(body, ',')
		}
		body = evs[i].AppendJSON(body, false)
	}
	body = append(body, `],"next_cursor":`...)
	if next != nil {
		body = jsontext.AppendString(body, next.String())
	} else {
		body = append(body, "null"...)
	}
	return c.JSONBlob(http.StatusOK, append(body, "}\n"...))
}

// getEvent answers GET /api/v1/events/:id. The data member is written
// as the exact bytes of event.Event.Marshal.
func (a *API) getEvent(c echo.Context) error {
	ev, err := a.store.GetEvent(c.Request().Context(), c.Param("id"))
	if err != nil {
		return storeErr(err, "event")
	}
	body := append(make([]byte, 0, len(ev.Payload)+len(ev.Metadata)+220), `{"data":`...)
	body = ev.AppendJSON(body, false)
	body = append(body, "}\n"...)
	return c.JSONBlob(http.StatusOK, body)
}

// replayEvent answers POST /api/v1/events/:id/replay: the event stored
// again as a new one (201), published and delivered like any event.
func (a *API) replayEvent(c echo.Context) error {
	id := c.Param("id")
	if !event.ValidID(id) {
		return problem.New(http.StatusNotFound, outcome.NotFound, "event not found")
	}
	ev, err := a.store.ReplayEvent(c.Request().Context(), id, a.now())
	if err != nil {
		return storeErr(err, "event")
	}
	a.log.Info("event replayed", "event_id", id, "new_event_id", ev.ID)
	a.wakeForwarder()
	body := append(make([]byte, 0, len(ev.Payload)+len(ev.Metadata)+220), `{"data":`...)
	body = ev.AppendJSON(body, false)
	return c.JSONBlob(http.StatusCreated, append(body, "}\n"...))
}

type replayRangeRequest struct {
	Trigger *string `json:"trigger"`
	Since   *string `json:"since"`
	Until   *string `json:"until"`
	Limit   *int    `json:"limit"`
}

type replayedRange struct {
	Replayed int      `json:"replayed"`
	EventIDs []string `json:"event_ids"`
}

// replayRange answers POST /api/v1/events/replay: the events of a trigger
// received in [since, until) (until defaults to now), oldest first, at
// most limit, each stored again as a new event.
func (a *API) replayRange(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	if b == nil {
		return problem.New(http.StatusBadRequest, problem.Invalid, `request body must be a JSON object with "trigger" and "since"`)
	}
	var req replayRangeRequest
	if err := decodeBody(b, fieldSet{"trigger": nil, "since": nil, "until": nil, "limit": nil}, &req); err != nil {
		return err
	}
	var errs []trigger.FieldError
	bad := func(field, msg string) { errs = append(errs, trigger.FieldError{Field: field, Message: msg}) }
	now := a.now()
	f := store.ReplayFilter{Until: now, Limit: store.DefaultReplayLimit}
	timeField := func(field string, v *string, dst *time.Time) {
		if v == nil {
			return
		}
		t, err := time.Parse(time.RFC3339Nano, *v)
		if err != nil {
			bad(field, "must be an RFC 3339 time such as 2026-11-28T10:00:00Z")
			return
		}
		*dst = t
	}
	if req.Since == nil {
		bad("since", "is required")
	}
	timeField("since", req.Since, &f.Since)
	timeField("until", req.Until, &f.Until)
	if req.Since != nil && req.Until != nil && !f.Since.IsZero() && !f.Until.After(f.Since) {
		bad("until", "must be after since")
	}
	if req.Limit != nil {
		f.Limit = *req.Limit
		if f.Limit < 1 || f.Limit > store.MaxReplayLimit {
			bad("limit", "must be between 1 and "+strconv.Itoa(store.MaxReplayLimit))
		}
	}
	if req.Trigger == nil || *req.Trigger == "" {
		bad("trigger", "is required")
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	t, err := a.store.GetTrigger(c.Request().Context(), *req.Trigger)
	if err != nil {
		return storeErr(err, "trigger")
	}
	f.TriggerID = t.ID
	ids, err := a.store.ReplayRange(c.Request().Context(), f, now)
	if err != nil {
		return storeErr(err, "trigger")
	}
	a.log.Info("events replayed", "trigger_ref", t.Ref, "replayed", len(ids))
	a.wakeForwarder()
	return c.JSON(http.StatusOK, data{replayedRange{Replayed: len(ids), EventIDs: ids}})
}
