package api

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

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
	evs, next, err := a.store.ListEvents(c.Request().Context(), ref, p)
	if err != nil {
		return storeErr(err, "event")
	}
	out := make([]json.RawMessage, len(evs))
	for i := range evs {
		if out[i], err = evs[i].Marshal(); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, list{Data: out, NextCursor: nextCursor(next)})
}

// getEvent answers GET /api/v1/events/:id. The data member is written
// as the exact bytes of event.Event.Marshal.
func (a *API) getEvent(c echo.Context) error {
	ev, err := a.store.GetEvent(c.Request().Context(), c.Param("id"))
	if err != nil {
		return storeErr(err, "event")
	}
	b, err := ev.Marshal()
	if err != nil {
		return err
	}
	body := make([]byte, 0, len(b)+10)
	body = append(body, `{"data":`...)
	body = append(body, b...)
	body = append(body, "}\n"...)
	return c.JSONBlob(http.StatusOK, body)
}
