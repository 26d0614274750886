package console

import (
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/trigger"
)

// triggerRow is one line of the triggers list.
type triggerRow struct {
	Ref, Pack, Name, Description string
	WebhookEnabled               bool
	HasKey                       bool
	Health                       string
	Events                       int64
	LastUsedAt                   *time.Time
}

// triggersPage answers GET /console/: every trigger with its webhook's
// state and traffic. It reads the store directly, as the API's webhook
// info does, since the API would need one request per trigger.
func (h *Console) triggersPage(c echo.Context) error {
	ctx := c.Request().Context()
	ts, err := h.store.ListTriggers(ctx)
	if err != nil {
		return err
	}
	usage, err := h.store.AllUsage(ctx)
	if err != nil {
		return err
	}
	now := h.now()
	rows := make([]triggerRow, len(ts))
	for i := range ts {
		t := &ts[i]
		u := usage[t.ID]
		rows[i] = triggerRow{
			Ref: t.Ref, Pack: t.Pack, Name: t.Name, Description: t.Description,
			WebhookEnabled: t.WebhookEnabled, HasKey: t.Key != "",
			Health: t.Health(u.Traffic(), t.WebhookSince(), now),
			Events: u.Events, LastUsedAt: u.LastUsedAt,
		}
	}
	return h.render(c, http.StatusOK, "triggers", view{Title: "Triggers", Section: "triggers", Data: rows})
}

// triggerPath is the API path of trigger ref's webhook, plus rest.
func triggerPath(ref, rest string) string {
	return "/api/v1/triggers/" + url.PathEscape(ref) + "/webhooks" + rest
}

// back is where a form post returns to: its "back" field when that is a
// console page, else fallback.
func back(c echo.Context, fallback string) string {
	if b := c.FormValue("back"); localPath(b) {
		return b
	}
	return fallback
}

// enableWebhook answers POST /console/triggers/:ref/enable.
func (h *Console) enableWebhook(c echo.Context) error {
	return h.toggle(c, true)
}

// disableWebhook answers POST /console/triggers/:ref/disable.
func (h *Console) disableWebhook(c echo.Context) error {
	return h.toggle(c, false)
}

func (h *Console) toggle(c echo.Context, on bool) error {
	ref := c.Param("ref")
	verb, done := "/disable", "disabled: its URLs answer 403 until it is enabled again"
	if on {
		verb, done = "/enable", "enabled"
	}
	var st struct {
		Ref string `json:"ref"`
	}
	if err := h.call(c, http.MethodPost, triggerPath(ref, verb), nil, &st); err != nil {
		return err
	}
	return h.redirect(c, back(c, "/console/"), &flash{Kind: "ok", Message: "Webhook of " + st.Ref + " " + done + "."})
}

// triggerHealthText explains a health status in a few words.
func triggerHealthText(status string) string {
	switch status {
	case trigger.HealthOK:
		return "OK"
	case trigger.HealthFailing:
		return "Failing: most requests in the last hour were refused"
	case trigger.HealthIdle:
		return "Idle: nothing accepted for longer than expected"
	case trigger.HealthDisabled:
		return "Disabled"
	}
	return status
}
