package api

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/secret"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// WebhookState is the JSON form of the answer of POST
// /api/v1/triggers/:ref/webhooks/enable and .../disable.
type WebhookState struct {
	ID             int64   `json:"id"`
	Ref            string  `json:"ref"`
	WebhookEnabled bool    `json:"webhook_enabled"`
	WebhookKey     *string `json:"webhook_key"`
	WebhookURL     *string `json:"webhook_url"`
}

func (a *API) viewState(t trigger.Trigger) WebhookState {
	v := a.viewTrigger(t)
	return WebhookState{ID: v.ID, Ref: v.Ref, WebhookEnabled: v.WebhookEnabled, WebhookKey: v.WebhookKey, WebhookURL: v.WebhookURL}
}

// enableWebhook answers POST /api/v1/triggers/:ref/webhooks/enable.
func (a *API) enableWebhook(c echo.Context) error {
	t, err := a.findTrigger(c)
	if err != nil {
		return err
	}
	if t, err = a.store.EnableWebhook(c.Request().Context(), t.ID); err != nil {
		return storeErr(err, "trigger")
	}
	a.log.Info("webhook enabled", "trigger_ref", t.Ref, "key_prefix", t.Key.Prefix())
	return c.JSON(http.StatusOK, data{a.viewState(t)})
}

// disableWebhook answers POST /api/v1/triggers/:ref/webhooks/disable.
func (a *API) disableWebhook(c echo.Context) error {
	t, err := a.findTrigger(c)
	if err != nil {
		return err
	}
	if t, err = a.store.DisableWebhook(c.Request().Context(), t.ID); err != nil {
		return storeErr(err, "trigger")
	}
	a.log.Info("webhook disabled", "trigger_ref", t.Ref, "key_prefix", t.Key.Prefix())
	return c.JSON(http.StatusOK, data{a.viewState(t)})
}

type regenerateRequest struct {
	GraceSeconds int `json:"grace_seconds"`
}

// RegeneratedKey is the JSON form of the answer of POST
// /api/v1/triggers/:ref/webhooks/regenerate.
type RegeneratedKey struct {
	WebhookKey           string     `json:"webhook_key"`
	WebhookURL           string     `json:"webhook_url"`
	PreviousKeyRevoked   bool       `json:"previous_key_revoked"`
	PreviousKeyExpiresAt *time.Time `json:"previous_key_expires_at"`
}

// regenerateKey answers POST /api/v1/triggers/:ref/webhooks/regenerate.
func (a *API) regenerateKey(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	var req regenerateRequest
	if b != nil {
		if err := decodeBody(b, fieldSet{"grace_seconds": nil}, &req); err != nil {
			return err
		}
	}
	if req.GraceSeconds < 0 || req.GraceSeconds > trigger.MaxGraceSeconds {
		return invalid([]trigger.FieldError{{Field: "grace_seconds", Message: "must be between 0 and " + strconv.Itoa(trigger.MaxGraceSeconds)}})
	}
	t, err := a.findTrigger(c)
	if err != nil {
		return err
	}
	r, err := a.store.RegenerateKey(c.Request().Context(), t.ID, time.Duration(req.GraceSeconds)*time.Second)
	if err != nil {
		return storeErr(err, "trigger")
	}
	a.log.Info("webhook key regenerated", "trigger_ref", r.Trigger.Ref, "key_prefix", r.Trigger.Key.Prefix(),
		"grace_seconds", req.GraceSeconds)
	v := RegeneratedKey{
		WebhookKey:           string(r.Trigger.Key),
		WebhookURL:           *a.webhookURL(r.Trigger.Key),
		PreviousKeyRevoked:   r.PreviousRevoked,
		PreviousKeyExpiresAt: r.PreviousExpiresAt,
	}
	return c.JSON(http.StatusOK, data{v})
}

// Webhook is the JSON form of a trigger's webhook in the contract, the
// answer of GET and PATCH /api/v1/triggers/:ref/webhooks.
type Webhook struct {
	Enabled     bool          `json:"enabled"`
	WebhookKey  *string       `json:"webhook_key"`
	WebhookURL  *string       `json:"webhook_url"`
	CreatedAt   *time.Time    `json:"created_at"`
	LastUsedAt  *time.Time    `json:"last_used_at"`
	TotalEvents int64         `json:"total_events"`
	Settings    Settings      `json:"settings"`
	Stats       WebhookStats  `json:"stats"`
	Health      WebhookHealth `json:"health"`
}

// WebhookHealth is the JSON form of a webhook's health: trigger.Health's judgement and what
// it is made from.
type WebhookHealth struct {
	Status         string     `json:"status"`
	LastAcceptedAt *time.Time `json:"last_accepted_at"`
	LastRejectedAt *time.Time `json:"last_rejected_at"`
	Accepted1h     int64      `json:"accepted_1h"`
	Rejected1h     int64      `json:"rejected_1h"`
}

// WebhookStats is the JSON form of a webhook's traffic.
type WebhookStats struct {
	// Requests counts the receiver's answers per outcome, every outcome
	// present.
	Requests map[string]int64 `json:"requests"`
}

// viewWebhook renders t's webhook with its traffic statistics.
func (a *API) viewWebhook(c echo.Context, t trigger.Trigger) (Webhook, error) {
	u, err := a.store.Usage(c.Request().Context(), t.ID)
	if err != nil {
		return Webhook{}, storeErr(err, "trigger")
	}
	tv := a.viewTrigger(t)
	v := Webhook{
		Enabled:     t.WebhookEnabled,
		WebhookKey:  tv.WebhookKey,
		WebhookURL:  tv.WebhookURL,
		CreatedAt:   t.WebhookCreatedAt,
		LastUsedAt:  u.LastUsedAt,
		TotalEvents: u.Events,
		Settings:    viewSettings(t.Settings, a.now()),
		Stats:       WebhookStats{Requests: make(map[string]int64, len(outcome.All))},
		Health: WebhookHealth{
			Status:         t.Health(u.Traffic(), t.WebhookSince(), a.now()),
			LastAcceptedAt: u.LastAcceptedAt, LastRejectedAt: u.LastRejectedAt,
			Accepted1h: u.Accepted1h, Rejected1h: u.Rejected1h,
		},
	}
	if v.CreatedAt != nil {
		utc := v.CreatedAt.UTC()
		v.CreatedAt = &utc
	}
	for _, o := range outcome.All {
		v.Stats.Requests[o] = u.Requests[o]
	}
	return v, nil
}

// getWebhook answers GET /api/v1/triggers/:ref/webhooks.
func (a *API) getWebhook(c echo.Context) error {
	t, err := a.findTrigger(c)
	if err != nil {
		return err
	}
	v, err := a.viewWebhook(c, t)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, data{v})
}

// patchWebhook answers PATCH /api/v1/triggers/:ref/webhooks. The change is
// made under the trigger's row lock, and not at all when any field is
// invalid.
func (a *API) patchWebhook(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	if b == nil {
		return problem.New(http.StatusBadRequest, problem.Invalid, "request body must be a JSON object")
	}
	if err := decodeBody(b, settingsFields, &struct{}{}); err != nil {
		return err
	}
	p, err := decodePatch(b, "")
	if err != nil {
		return err
	}
	t, err := a.findTrigger(c)
	if err != nil {
		return err
	}
	var generated secret.Value
	t, err = a.store.UpdateSettings(c.Request().Context(), t.ID, func(s *trigger.Settings) error {
		var errs []trigger.FieldError
		generated, errs = p.apply(s, a.now(), "")
		if len(errs) > 0 {
			return invalid(errs)
		}
		return nil
	})
	if err != nil {
		return storeErr(err, "trigger")
	}
	a.log.Info("webhook settings updated", "trigger_ref", t.Ref, "secret_generated", generated != "")
	v, err := a.viewWebhook(c, t)
	if err != nil {
		return err
	}
	v.Settings.HMAC.Secret = string(generated)
	return c.JSON(http.StatusOK, data{v})
}

// Limits of list pages.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 1000
)

// page reads the limit and cursor query parameters; bad values are a 400.
func page(c echo.Context) (store.Page, error) {
	p := store.Page{Limit: DefaultPageLimit}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageLimit {
			return p, problem.New(http.StatusBadRequest, problem.Invalid, "limit must be an integer between 1 and %d", MaxPageLimit)
		}
		p.Limit = n
	}
	cur, err := store.ParseCursor(c.QueryParam("cursor"))
	if err != nil {
		return p, problem.New(http.StatusBadRequest, problem.Invalid, "invalid cursor")
	}
	p.Cursor = cur
	return p, nil
}

func nextCursor(c *store.Cursor) *string {
	if c == nil {
		return nil
	}
	s := c.String()
	return &s
}

// webhookLog answers GET /api/v1/triggers/:ref/webhooks/log.
func (a *API) webhookLog(c echo.Context) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	oc := c.QueryParam("outcome")
	if oc != "" && !slices.Contains(outcome.All, oc) {
		return problem.New(http.StatusBadRequest, problem.Invalid, "unknown outcome; known: %s", strings.Join(outcome.All, ", "))
	}
	t, err := a.findTrigger(c)
	if err != nil {
		return err
	}
	rows, next, err := a.store.ListAudit(c.Request().Context(), t.ID, oc, p)
	if err != nil {
		return storeErr(err, "trigger")
	}
	if rows == nil {
		rows = []store.Audit{}
	}
	return c.JSON(http.StatusOK, list{Data: rows, NextCursor: nextCursor(next)})
}
