package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/api"
	"github.com/inlet-dev/inlet/pkg/store"
)

func (h *Console) destinationRoutes(g *echo.Group) {
	g.GET("/destinations", h.destinationsPage)
	g.GET("/destinations/:id", h.destinationPage)
	g.POST("/destinations/:id/enable", h.enableDestination)
	g.POST("/destinations/:id/disable", h.disableDestination)
	g.POST("/destinations/:id/test", h.testDestination)
}

// retrySchedule says the waits between a destination's attempts, given
// in seconds, as "10 s, 1 min, 5 min".
func retrySchedule(seconds []int) string {
	if len(seconds) == 0 {
		return "no retries"
	}
	parts := make([]string, len(seconds))
	for i, s := range seconds {
		parts[i] = shortDuration(time.Duration(s) * time.Second)
	}
	return strings.Join(parts, ", ")
}

// shortDuration writes d as "45 s", "5 min", "2 h" or "1 day".
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Minute || d%time.Minute != 0:
		return strconv.Itoa(int(d/time.Second)) + " s"
	case d < time.Hour || d%time.Hour != 0:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 24*time.Hour || d%(24*time.Hour) != 0:
		return strconv.Itoa(int(d/time.Hour)) + " h"
	}
	n := int(d / (24 * time.Hour))
	if n == 1 {
		return "1 day"
	}
	return strconv.Itoa(n) + " days"
}

// destinationsData is the destinations page.
type destinationsData struct {
	Destinations []api.Destination
	Trigger      string
	Triggers     []string
}

// destinationsPage answers GET /console/destinations: every destination,
// or those of one trigger, read through each trigger's destinations.
func (h *Console) destinationsPage(c echo.Context) error {
	d := destinationsData{Trigger: c.QueryParam("trigger")}
	refs, err := h.triggerRefs(c)
	if err != nil {
		return err
	}
	d.Triggers = refs
	list := refs
	if d.Trigger != "" {
		list = []string{d.Trigger}
	}
	for _, ref := range list {
		var ds []api.Destination
		if err := h.call(c, http.MethodGet, "/api/v1/triggers/"+url.PathEscape(ref)+"/destinations", nil, &ds); err != nil {
			return err
		}
		d.Destinations = append(d.Destinations, ds...)
	}
	title := "Destinations"
	if d.Trigger != "" {
		title = "Destinations of " + d.Trigger
	}
	return h.render(c, http.StatusOK, "destinations", view{Title: title, Section: "destinations", Data: d})
}

// destinationData is the destination page.
type destinationData struct {
	Dest       api.Destination
	Deliveries []deliveryRow
	Status     string
	Statuses   []string
	Pager      pager
	Back       string
}

// destinationPage answers GET /console/destinations/:id: its settings,
// statistics and circuit, and its deliveries by status, a page at a time.
func (h *Console) destinationPage(c echo.Context) error {
	id := c.Param("id")
	path := "/api/v1/destinations/" + url.PathEscape(id)
	d := destinationData{Status: c.QueryParam("status"), Statuses: []string{"pending", "succeeded", "failed"}}
	if err := h.call(c, http.MethodGet, path, nil, &d.Dest); err != nil {
		return err
	}
	q := url.Values{}
	if d.Status != "" {
		q.Set("status", d.Status)
	}
	api := url.Values{"limit": {strconv.Itoa(pageSize)}}
	for k, v := range q {
		api[k] = v
	}
	cursor := c.QueryParam("cursor")
	if cursor != "" {
		api.Set("cursor", cursor)
	}
	var rows []store.Delivery
	next, err := h.callList(c, path+"/deliveries", api, &rows)
	if err != nil {
		return err
	}
	d.Deliveries = make([]deliveryRow, len(rows))
	for i := range rows {
		d.Deliveries[i] = deliveryRow{Delivery: rows[i]}
	}
	self := "/console/destinations/" + url.PathEscape(id)
	d.Pager = newPager(self, q, cursor, next)
	d.Back = self
	if u := c.Request().URL.RawQuery; u != "" {
		d.Back += "?" + u
	}
	return h.render(c, http.StatusOK, "destination", view{Title: "Destination " + d.Dest.Name, Section: "destinations", Data: d})
}

// enableDestination answers POST /console/destinations/:id/enable.
func (h *Console) enableDestination(c echo.Context) error { return h.switchDestination(c, true) }

// disableDestination answers POST /console/destinations/:id/disable.
func (h *Console) disableDestination(c echo.Context) error { return h.switchDestination(c, false) }

func (h *Console) switchDestination(c echo.Context, on bool) error {
	id := c.Param("id")
	self := "/console/destinations/" + url.PathEscape(id)
	var d api.Destination
	if err := h.call(c, http.MethodPatch, "/api/v1/destinations/"+url.PathEscape(id), map[string]bool{"enabled": on}, &d); err != nil {
		return h.failed(c, self, err)
	}
	msg := d.Name + " is disabled: new events are not delivered to it."
	if on {
		msg = d.Name + " is enabled: new events are delivered to it."
	}
	return h.redirect(c, back(c, self), &flash{Kind: "ok", Message: msg})
}

// testDestination answers POST /console/destinations/:id/test: a signed
// request of an event that is not stored, sent now; the page after says
// how the destination answered.
func (h *Console) testDestination(c echo.Context) error {
	id := c.Param("id")
	self := "/console/destinations/" + url.PathEscape(id)
	var res struct {
		Success         bool    `json:"success"`
		StatusCode      *int    `json:"status_code"`
		DurationMS      float64 `json:"duration_ms"`
		ResponseExcerpt string  `json:"response_excerpt"`
		Error           *string `json:"error"`
	}
	if err := h.call(c, http.MethodPost, "/api/v1/destinations/"+url.PathEscape(id)+"/test", nil, &res); err != nil {
		return h.failed(c, self, err)
	}
	var b strings.Builder
	b.WriteString("Test request ")
	if res.StatusCode != nil {
		fmt.Fprintf(&b, "answered HTTP %d", *res.StatusCode)
	} else {
		b.WriteString("got no answer")
	}
	fmt.Fprintf(&b, " in %.0f ms", res.DurationMS)
	if res.Error != nil && *res.Error != "" {
		b.WriteString(": " + *res.Error)
	}
	if res.ResponseExcerpt != "" {
		b.WriteString(". The answer began: " + res.ResponseExcerpt)
	}
	f := &flash{Kind: "ok", Message: b.String()}
	if !res.Success {
		f.Kind = "error"
		f.Message = "Failed. " + f.Message
	} else {
		f.Message = "Succeeded. " + f.Message
	}
	return h.redirect(c, self, f)
}
