package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// Trigger is the JSON form of a trigger in the contract, as the trigger
// routes answer it.
type Trigger struct {
	ID             int64           `json:"id"`
	Ref            string          `json:"ref"`
	Pack           string          `json:"pack"`
	Name           string          `json:"name"`
	Description    string          `json:"description"`
	PayloadSchema  json.RawMessage `json:"payload_schema"`
	WebhookEnabled bool            `json:"webhook_enabled"`
	WebhookKey     *string         `json:"webhook_key"`
	WebhookURL     *string         `json:"webhook_url"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	// HMACSecret is set only in the answer to the creation that generated
	// it.
	HMACSecret string `json:"hmac_secret,omitempty"`
}

func (a *API) viewTrigger(t trigger.Trigger) Trigger {
	v := Trigger{
		ID:             t.ID,
		Ref:            t.Ref,
		Pack:           t.Pack,
		Name:           t.Name,
		Description:    t.Description,
		PayloadSchema:  t.PayloadSchema,
		WebhookEnabled: t.WebhookEnabled,
		WebhookURL:     a.webhookURL(t.Key),
		CreatedAt:      t.CreatedAt,
		UpdatedAt:      t.UpdatedAt,
	}
	if len(v.PayloadSchema) == 0 {
		v.PayloadSchema = json.RawMessage("null")
	}
	if t.Key != "" {
		k := string(t.Key)
		v.WebhookKey = &k
	}
	return v
}

// data is the envelope of every successful answer.
type data struct {
	Data any `json:"data"`
}

// list is the envelope of a list; NextCursor is null on the last page.
type list struct {
	Data       any     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// findTrigger returns the trigger named by the :ref parameter.
func (a *API) findTrigger(c echo.Context) (trigger.Trigger, error) {
	t, err := a.store.GetTrigger(c.Request().Context(), c.Param("ref"))
	if err != nil {
		return t, storeErr(err, "trigger")
	}
	return t, nil
}

// listTriggers answers GET /api/v1/triggers.
func (a *API) listTriggers(c echo.Context) error {
	ts, err := a.store.ListTriggers(c.Request().Context())
	if err != nil {
		return storeErr(err, "trigger")
	}
	views := make([]Trigger, len(ts))
	for i, t := range ts {
		views[i] = a.viewTrigger(t)
	}
	return c.JSON(http.StatusOK, list{Data: views})
}

// getTrigger answers GET /api/v1/triggers/:ref.
func (a *API) getTrigger(c echo.Context) error {
	t, err := a.findTrigger(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, data{a.viewTrigger(t)})
}

// createFields are the members POST /api/v1/triggers accepts: the webhook
// block takes the settings PATCH takes and "enabled".
var createFields = func() fieldSet {
	webhook := fieldSet{"enabled": nil}
	for name, sub := range settingsFields {
		webhook[name] = sub
	}
	return fieldSet{"ref": nil, "description": nil, "payload_schema": nil, "webhook": webhook}
}()

type createRequest struct {
	Ref           string          `json:"ref"`
	Description   string          `json:"description"`
	PayloadSchema json.RawMessage `json:"payload_schema"`
	// Webhook is decoded on its own: "enabled" and a settings patch.
	Webhook json.RawMessage `json:"webhook"`
}

// createTrigger answers POST /api/v1/triggers.
func (a *API) createTrigger(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	if b == nil {
		return problem.New(http.StatusBadRequest, problem.Invalid, "request body must be a JSON object")
	}
	var req createRequest
	if err := decodeBody(b, createFields, &req); err != nil {
		return err
	}
	var errs []trigger.FieldError
	if !trigger.ValidRef(req.Ref) {
		errs = append(errs, trigger.FieldError{Field: "ref",
			Message: `must be "<pack>.<name>", each part 1 to 64 of A-Z a-z 0-9 _ - and starting with a letter or digit`})
	}
	if string(req.PayloadSchema) == "null" {
		req.PayloadSchema = nil
	}
	if req.PayloadSchema != nil {
		var obj map[string]json.RawMessage
		if json.Unmarshal(req.PayloadSchema, &obj) != nil {
			errs = append(errs, trigger.FieldError{Field: "payload_schema", Message: "must be a JSON Schema object or null"})
		} else {
			errs = append(errs, fieldErrors(trigger.ValidateSchema(req.PayloadSchema))...)
		}
	}
	n := store.NewTrigger{Ref: req.Ref, Description: req.Description, PayloadSchema: req.PayloadSchema, Settings: trigger.DefaultSettings()}
	patch := &settingsPatch{}
	if w := req.Webhook; w != nil && string(w) != "null" {
		var en struct {
			Enabled bool `json:"enabled"`
		}
		if err := unmarshalFields(w, &en, "webhook."); err != nil {
			return err
		}
		n.Enabled = en.Enabled
		if patch, err = decodePatch(w, "webhook."); err != nil {
			return err
		}
	}
	generated, serrs := patch.apply(&n.Settings, a.now(), "webhook.")
	errs = append(errs, serrs...)
	if len(errs) > 0 {
		return invalid(errs)
	}
	t, err := a.store.CreateTrigger(c.Request().Context(), n)
	if err != nil {
		return storeErr(err, "a trigger with this ref")
	}
	a.log.Info("trigger created", "trigger_ref", t.Ref, "webhook_enabled", t.WebhookEnabled, "key_prefix", t.Key.Prefix())
	v := a.viewTrigger(t)
	v.HMACSecret = string(generated)
	return c.JSON(http.StatusCreated, data{v})
}

// deleteTrigger answers DELETE /api/v1/triggers/:ref.
func (a *API) deleteTrigger(c echo.Context) error {
	t, err := a.findTrigger(c)
	if err != nil {
		return err
	}
	if err := a.store.DeleteTrigger(c.Request().Context(), t.ID); err != nil {
		return storeErr(err, "trigger")
	}
	a.log.Info("trigger deleted", "trigger_ref", t.Ref)
	return c.NoContent(http.StatusNoContent)
}
