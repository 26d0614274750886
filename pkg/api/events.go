package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/jsontext"
	"github.com/inlet-dev/inlet/pkg/problem"
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
