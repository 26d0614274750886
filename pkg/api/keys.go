package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// Key is the JSON form of a webhook key in the contract, as the key
// routes answer it.
type Key struct {
	ID         int64      `json:"id"`
	Label      string     `json:"label"`
	Key        string     `json:"key"`
	URL        string     `json:"url"`
	Primary    bool       `json:"primary"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
}

func (a *API) viewKey(k trigger.WebhookKey) Key {
	return Key{
		ID: k.ID, Label: k.Label, Key: string(k.Key), URL: *a.webhookURL(k.Key), Primary: k.Primary(),
		CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, ExpiresAt: k.ExpiresAt,
	}
}

// listKeys answers GET /api/v1/triggers/:ref/webhooks/keys.
func (a *API) listKeys(c echo.Context) error {
	t, err := a.findTrigger(c)
	if err != nil {
		return err
	}
	keys, err := a.store.ListKeys(c.Request().Context(), t.ID)
	if err != nil {
		return storeErr(err, "trigger")
	}
	views := make([]Key, len(keys))
	for i, k := range keys {
		views[i] = a.viewKey(k)
	}
	return c.JSON(http.StatusOK, data{views})
}

type createKeyRequest struct {
	Label            string `json:"label"`
	ExpiresInSeconds *int   `json:"expires_in_seconds"`
}

// MaxKeyLabel is the longest label a key may have.
const MaxKeyLabel = 64

// createKey answers POST /api/v1/triggers/:ref/webhooks/keys.
func (a *API) createKey(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	if b == nil {
		return problem.New(http.StatusBadRequest, problem.Invalid, "request body must be a JSON object with a label")
	}
	var req createKeyRequest
	if err := decodeBody(b, fieldSet{"label": nil, "expires_in_seconds": nil}, &req); err != nil {
		return err
	}
	var errs []trigger.FieldError
	req.Label = strings.TrimSpace(req.Label)
	switch {
	case req.Label == "":
		errs = append(errs, trigger.FieldError{Field: "label", Message: "must not be empty"})
	case len(req.Label) > MaxKeyLabel:
		errs = append(errs, trigger.FieldError{Field: "label", Message: "must be at most " + strconv.Itoa(MaxKeyLabel) + " bytes"})
	}
	var expiresIn time.Duration
	if e := req.ExpiresInSeconds; e != nil {
		if *e < 1 || *e > 10*365*24*3600 {
			errs = append(errs, trigger.FieldError{Field: "expires_in_seconds", Message: "must be between 1 and 315360000 (ten years)"})
		}
		expiresIn = time.Duration(*e) * time.Second
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	t, err := a.findTrigger(c)
	if err != nil {
		return err
	}
	k, err := a.store.CreateKey(c.Request().Context(), t.ID, req.Label, expiresIn)
	switch {
	case errors.Is(err, store.ErrTooManyKeys):
		return invalid([]trigger.FieldError{{Field: "label", Message: "the trigger already holds " + strconv.Itoa(trigger.MaxLiveKeys) + " live keys; revoke one first"}})
	case errors.Is(err, store.ErrConflict):
		return invalid([]trigger.FieldError{{Field: "label", Message: "a live key of this trigger already has this label"}})
	case err != nil:
		return storeErr(err, "trigger")
	}
	a.log.Info("webhook key created", "trigger_ref", t.Ref, "key_prefix", k.Key.Prefix(), "label", k.Label)
	return c.JSON(http.StatusCreated, data{a.viewKey(k)})
}

// revokeKey answers DELETE /api/v1/triggers/:ref/webhooks/keys/:id.
func (a *API) revokeKey(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return problem.New(http.StatusNotFound, outcome.NotFound, "key not found")
	}
	t, err := a.findTrigger(c)
	if err != nil {
		return err
	}
	k, err := a.store.RevokeKey(c.Request().Context(), t.ID, id)
	if errors.Is(err, store.ErrPrimaryKey) {
		return problem.New(http.StatusConflict, problem.Conflict, "the primary key cannot be revoked alone: regenerate it")
	}
	if err != nil {
		return storeErr(err, "key")
	}
	a.log.Info("webhook key revoked", "trigger_ref", t.Ref, "key_prefix", k.Key.Prefix(), "label", k.Label)
	return c.NoContent(http.StatusNoContent)
}
