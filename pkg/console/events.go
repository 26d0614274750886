package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/store"
)

func (h *Console) eventRoutes(g *echo.Group) {
	g.GET("/events", h.eventsPage)
	g.GET("/events/:id", h.eventPage)
	g.POST("/events/:id/replay", h.replayEvent)
	g.POST("/deliveries/:id/retry", h.retryDelivery)
}

// eventView is an event as the API answers it.
type eventView struct {
	ID         string          `json:"id"`
	TriggerRef string          `json:"trigger_ref"`
	Source     string          `json:"source"`
	Payload    json.RawMessage `json:"payload"`
	Metadata   json.RawMessage `json:"metadata"`
	ReceivedAt time.Time       `json:"received_at"`
}

// excerptLen is how much of a payload the events list shows.
const excerptLen = 140

// Excerpt is the start of the payload's JSON, on one line.
func (e eventView) Excerpt() string {
	s := string(e.Payload)
	if r := []rune(s); len(r) > excerptLen {
		return string(r[:excerptLen]) + "…"
	}
	return s
}

// Size is the payload's length in bytes.
func (e eventView) Size() int { return len(e.Payload) }

// Meta is the metadata members the event page names.
func (e eventView) Meta() eventMeta {
	var m eventMeta
	_ = json.Unmarshal(e.Metadata, &m)
	return m
}

type eventMeta struct {
	SourceIP   string `json:"source_ip"`
	UserAgent  string `json:"user_agent"`
	KeyPrefix  string `json:"webhook_key_prefix"`
	KeyLabel   string `json:"key_label"`
	DeliveryID string `json:"delivery_id"`
	ReplayOf   string `json:"replay_of"`
}

// eventsData is the events page.
type eventsData struct {
	Events   []eventView
	Trigger  string
	Triggers []string
	Pager    pager
}

// eventsPage answers GET /console/events: stored events newest first,
// of one trigger or all, a page at a time.
func (h *Console) eventsPage(c echo.Context) error {
	d := eventsData{Trigger: c.QueryParam("trigger")}
	refs, err := h.triggerRefs(c)
	if err != nil {
		return err
	}
	d.Triggers = refs
	q := url.Values{}
	if d.Trigger != "" {
		q.Set("trigger", d.Trigger)
	}
	api := url.Values{"limit": {strconv.Itoa(pageSize)}}
	for k, v := range q {
		api[k] = v
	}
	cursor := c.QueryParam("cursor")
	if cursor != "" {
		api.Set("cursor", cursor)
	}
	next, err := h.callList(c, "/api/v1/events", api, &d.Events)
	if err != nil {
		return err
	}
	d.Pager = newPager("/console/events", q, cursor, next)
	title := "Events"
	if d.Trigger != "" {
		title = "Events of " + d.Trigger
	}
	return h.render(c, http.StatusOK, "events", view{Title: title, Section: "events", Data: d})
}

// deliveryRow is a delivery of an event, with its destination's name.
type deliveryRow struct {
	store.Delivery
	DestinationName string
}

// eventData is the event page.
type eventData struct {
	Event      eventView
	Deliveries []deliveryRow
	Back       string
}

// eventPage answers GET /console/events/:id: the event's JSON, how it
// arrived, a replay button and its deliveries.
func (h *Console) eventPage(c echo.Context) error {
	id := c.Param("id")
	var d eventData
	if err := h.call(c, http.MethodGet, "/api/v1/events/"+url.PathEscape(id), nil, &d.Event); err != nil {
		return err
	}
	var dl []store.Delivery
	if err := h.call(c, http.MethodGet, "/api/v1/events/"+url.PathEscape(id)+"/deliveries", nil, &dl); err != nil {
		return err
	}
	names := map[string]string{}
	for _, x := range dl {
		if _, ok := names[x.DestinationID]; ok {
			continue
		}
		var dst struct {
			Name string `json:"name"`
		}
		// A deleted destination keeps its deliveries; its id is named.
		if h.call(c, http.MethodGet, "/api/v1/destinations/"+url.PathEscape(x.DestinationID), nil, &dst) == nil {
			names[x.DestinationID] = dst.Name
		} else {
			names[x.DestinationID] = ""
		}
	}
	d.Deliveries = make([]deliveryRow, len(dl))
	for i, x := range dl {
		d.Deliveries[i] = deliveryRow{Delivery: x, DestinationName: names[x.DestinationID]}
	}
	d.Back = "/console/events/" + url.PathEscape(id)
	return h.render(c, http.StatusOK, "event", view{Title: "Event " + d.Event.ID, Section: "events", Data: d})
}

// replayEvent answers POST /console/events/:id/replay: the event is
// stored again as a new one, and its page shown.
func (h *Console) replayEvent(c echo.Context) error {
	id := c.Param("id")
	var ev eventView
	if err := h.call(c, http.MethodPost, "/api/v1/events/"+url.PathEscape(id)+"/replay", nil, &ev); err != nil {
		return h.failed(c, "/console/events/"+url.PathEscape(id), err)
	}
	return h.redirect(c, "/console/events/"+url.PathEscape(ev.ID), &flash{Kind: "ok",
		Message: "Replayed " + id + " as this new event: it is published and delivered like any other."})
}

// retryDelivery answers POST /console/deliveries/:id/retry: a failed
// delivery is queued again at once.
func (h *Console) retryDelivery(c echo.Context) error {
	id := c.Param("id")
	var d store.Delivery
	if err := h.call(c, http.MethodPost, "/api/v1/deliveries/"+url.PathEscape(id)+"/retry", nil, &d); err != nil {
		return h.failed(c, back(c, "/console/destinations"), err)
	}
	to := "/console/destinations/" + url.PathEscape(d.DestinationID)
	return h.redirect(c, back(c, to), &flash{Kind: "ok",
		Message: "Delivery " + d.ID + " of " + d.EventID + " is queued again; it is tried at once."})
}
