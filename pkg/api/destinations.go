package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/destination"
	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/secret"
	"github.com/inlet-dev/inlet/pkg/sign"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// Destination is the JSON form of a destination in the contract, as the
// destination routes answer it. Its secrets never appear, and of its
// headers only the names.
type Destination struct {
	ID                   string                  `json:"id"`
	TriggerRef           string                  `json:"trigger_ref"`
	Name                 string                  `json:"name"`
	URL                  string                  `json:"url"`
	Enabled              bool                    `json:"enabled"`
	Signing              Signing                 `json:"signing"`
	Headers              []string                `json:"headers"`
	TimeoutSeconds       int                     `json:"timeout_seconds"`
	RetryScheduleSeconds []int                   `json:"retry_schedule_seconds"`
	MaxInFlight          int                     `json:"max_in_flight"`
	Circuit              Circuit                 `json:"circuit"`
	CreatedAt            time.Time               `json:"created_at"`
	UpdatedAt            time.Time               `json:"updated_at"`
	Stats                *store.DestinationStats `json:"stats,omitempty"`
	// Secret is set only in the answer that creates the destination.
	Secret *string `json:"secret,omitempty"`
}

// Signing is the JSON form of how a destination signs what it forwards.
type Signing struct {
	Scheme    sign.Scheme `json:"scheme"`
	SecretSet bool        `json:"secret_set"`
	// PreviousSecretExpiresAt is set while a rotated secret still signs.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
}

// Circuit is the JSON form of a destination's circuit breaker.
type Circuit struct {
	State               string     `json:"state"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	OpenUntil           *time.Time `json:"open_until"`
}

func viewDestination(d destination.Destination, now time.Time) Destination {
	v := Destination{
		ID: d.ID, TriggerRef: d.TriggerRef, Name: d.Name, URL: d.URL, Enabled: d.Enabled,
		Signing:        Signing{Scheme: d.Scheme, SecretSet: d.Secret != ""},
		Headers:        make([]string, 0, len(d.Headers)),
		TimeoutSeconds: d.TimeoutSeconds, RetryScheduleSeconds: d.RetrySchedule, MaxInFlight: d.MaxInFlight,
		Circuit: Circuit{State: d.Circuit.State(now), ConsecutiveFailures: d.Circuit.ConsecutiveFailures,
			OpenUntil: d.Circuit.OpenUntil},
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
	if exp := d.PreviousSecretExpiresAt; d.PreviousSecret != "" && exp != nil && now.Before(*exp) {
		v.Signing.PreviousSecretExpiresAt = exp
	}
	for name := range d.Headers {
		v.Headers = append(v.Headers, name)
	}
	slices.Sort(v.Headers)
	return v
}

// destinationRequest is the body of POST and PATCH on destinations. Every
// member is optional in a PATCH; headers there are merged, a null value
// removing a header.
type destinationRequest struct {
	Name                 *string            `json:"name"`
	URL                  *string            `json:"url"`
	Enabled              *bool              `json:"enabled"`
	Signing              *signingRequest    `json:"signing"`
	Headers              map[string]*string `json:"headers"`
	TimeoutSeconds       *int               `json:"timeout_seconds"`
	RetryScheduleSeconds *[]int             `json:"retry_schedule_seconds"`
	MaxInFlight          *int               `json:"max_in_flight"`
}

type signingRequest struct {
	Scheme *string `json:"scheme"`
	Secret *string `json:"secret"`
}

var destinationFields = fieldSet{
	"name": nil, "url": nil, "enabled": nil, "signing": {"scheme": nil, "secret": nil}, "headers": nil,
	"timeout_seconds": nil, "retry_schedule_seconds": nil, "max_in_flight": nil,
}

// apply sets on d what r gives. It reports the fields that cannot be
// applied; Validate judges the values.
func (r *destinationRequest) apply(d *destination.Destination, creating bool) []trigger.FieldError {
	var errs []trigger.FieldError
	setIf(&d.Name, r.Name)
	setIf(&d.URL, r.URL)
	setIf(&d.Enabled, r.Enabled)
	setIf(&d.TimeoutSeconds, r.TimeoutSeconds)
	setIf(&d.MaxInFlight, r.MaxInFlight)
	if r.RetryScheduleSeconds != nil {
		d.RetrySchedule = *r.RetryScheduleSeconds
		if d.RetrySchedule == nil {
			d.RetrySchedule = []int{}
		}
	}
	if s := r.Signing; s != nil {
		if s.Scheme != nil {
			if creating {
				d.Scheme = sign.Scheme(*s.Scheme)
			} else if sign.Scheme(*s.Scheme) != d.Scheme {
				errs = append(errs, trigger.FieldError{Field: "signing.scheme",
					Message: "cannot be changed; create a destination with the new scheme"})
			}
		}
		if s.Secret != nil {
			d.Secret = secret.Value(*s.Secret)
			d.PreviousSecret, d.PreviousSecretExpiresAt = "", nil
		}
	}
	for name, v := range r.Headers {
		name = http.CanonicalHeaderKey(name)
		if v == nil {
			delete(d.Headers, name)
			continue
		}
		d.Headers[name] = secret.Value(*v)
	}
	return errs
}

// listDestinations answers GET /api/v1/triggers/:ref/destinations.
func (a *API) listDestinations(c echo.Context) error {
	t, err := a.findTrigger(c)
	if err != nil {
		return err
	}
	ds, err := a.store.ListDestinations(c.Request().Context(), t.ID)
	if err != nil {
		return storeErr(err, "trigger")
	}
	now := a.now()
	views := make([]Destination, len(ds))
	for i, d := range ds {
		views[i] = viewDestination(d, now)
	}
	return c.JSON(http.StatusOK, data{views})
}

// createDestination answers POST /api/v1/triggers/:ref/destinations. A
// signing scheme without a secret gets a generated one; either way the
// secret is in this answer, and never again.
func (a *API) createDestination(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	if b == nil {
		return problem.New(http.StatusBadRequest, problem.Invalid, "request body must be a JSON object with a name and a url")
	}
	var req destinationRequest
	if err := decodeBody(b, destinationFields, &req); err != nil {
		return err
	}
	t, err := a.findTrigger(c)
	if err != nil {
		return err
	}
	now := a.now()
	d := destination.Destination{
		ID: event.NewPrefixedID("dst_", now), TriggerID: t.ID, TriggerRef: t.Ref, Enabled: true,
		Headers: map[string]secret.Value{},
	}
	d.Defaults()
	errs := req.apply(&d, true)
	if req.Signing == nil || req.Signing.Secret == nil {
		if _, err := sign.ParseScheme(string(d.Scheme)); err == nil {
			s, err := sign.NewSecret(d.Scheme)
			if err != nil {
				return err
			}
			d.Secret = secret.Value(s)
		}
	}
	if err := d.Validate(); err != nil {
		errs = append(errs, fieldErrors(err)...)
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	created, err := a.store.CreateDestination(c.Request().Context(), d)
	if err != nil {
		return storeErr(err, "trigger")
	}
	a.log.Info("destination created", "destination", created.ID, "trigger_ref", t.Ref, "scheme", string(created.Scheme))
	v := viewDestination(created, now)
	if created.Secret != "" {
		s := string(created.Secret)
		v.Secret = &s
	}
	return c.JSON(http.StatusCreated, data{v})
}

// destinationID reads the :id parameter; anything but a destination id is
// a 404 without asking the database.
func destinationID(c echo.Context) (string, error) {
	id := c.Param("id")
	if !event.ValidPrefixedID("dst_", id) {
		return "", problem.New(http.StatusNotFound, outcome.NotFound, "destination not found")
	}
	return id, nil
}

// getDestination answers GET /api/v1/destinations/:id, with its stats.
func (a *API) getDestination(c echo.Context) error {
	id, err := destinationID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	d, err := a.store.GetDestination(ctx, id)
	if err != nil {
		return storeErr(err, "destination")
	}
	st, err := a.store.DestinationStats(ctx, id)
	if err != nil {
		return storeErr(err, "destination")
	}
	v := viewDestination(d, a.now())
	v.Stats = &st
	return c.JSON(http.StatusOK, data{v})
}

// patchDestination answers PATCH /api/v1/destinations/:id: every member
// given is changed, or, when one is invalid, none.
func (a *API) patchDestination(c echo.Context) error {
	id, err := destinationID(c)
	if err != nil {
		return err
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	if b == nil {
		return problem.New(http.StatusBadRequest, problem.Invalid, "request body must be a JSON object")
	}
	var req destinationRequest
	if err := decodeBody(b, destinationFields, &req); err != nil {
		return err
	}
	d, err := a.store.UpdateDestination(c.Request().Context(), id, "destination.update", func(d *destination.Destination) error {
		errs := req.apply(d, false)
		if err := d.Validate(); err != nil {
			errs = append(errs, fieldErrors(err)...)
		}
		if len(errs) > 0 {
			return invalid(errs)
		}
		return nil
	})
	if err != nil {
		return storeErr(err, "destination")
	}
	a.log.Info("destination updated", "destination", d.ID)
	return c.JSON(http.StatusOK, data{viewDestination(d, a.now())})
}

// deleteDestination answers DELETE /api/v1/destinations/:id.
func (a *API) deleteDestination(c echo.Context) error {
	id, err := destinationID(c)
	if err != nil {
		return err
	}
	if err := a.store.DeleteDestination(c.Request().Context(), id); err != nil {
		return storeErr(err, "destination")
	}
	a.log.Info("destination deleted", "destination", id)
	return c.NoContent(http.StatusNoContent)
}

type rotateDestinationRequest struct {
	GraceSeconds *int `json:"grace_seconds"`
}

type rotatedSecret struct {
	Secret                  string     `json:"secret"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
}

// rotateDestinationSecret answers POST /api/v1/destinations/:id/rotate-secret:
// a new secret signs from now on, and the old one beside it for
// grace_seconds (default a day; 0 drops it at once).
func (a *API) rotateDestinationSecret(c echo.Context) error {
	id, err := destinationID(c)
	if err != nil {
		return err
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	var req rotateDestinationRequest
	if b != nil {
		if err := decodeBody(b, fieldSet{"grace_seconds": nil}, &req); err != nil {
			return err
		}
	}
	grace := destination.DefaultSecretGrace
	if g := req.GraceSeconds; g != nil {
		if *g < 0 || *g > trigger.MaxGraceSeconds {
			return invalid([]trigger.FieldError{{Field: "grace_seconds", Message: "must be between 0 and " + strconv.Itoa(trigger.MaxGraceSeconds)}})
		}
		grace = time.Duration(*g) * time.Second
	}
	now := a.now()
	var fresh string
	d, err := a.store.UpdateDestination(c.Request().Context(), id, "destination.rotate_secret", func(d *destination.Destination) error {
		if d.Scheme == sign.None {
			return problem.New(http.StatusConflict, problem.Conflict, "the destination does not sign its requests (scheme none)")
		}
		s, err := sign.NewSecret(d.Scheme)
		if err != nil {
			return err
		}
		fresh = s
		if grace > 0 {
			exp := now.Add(grace).UTC().Truncate(time.Microsecond)
			d.PreviousSecret, d.PreviousSecretExpiresAt = d.Secret, &exp
		} else {
			d.PreviousSecret, d.PreviousSecretExpiresAt = "", nil
		}
		d.Secret = secret.Value(s)
		return nil
	})
	if err != nil {
		return storeErr(err, "destination")
	}
	a.log.Info("destination secret rotated", "destination", d.ID, "grace_seconds", int(grace.Seconds()))
	return c.JSON(http.StatusOK, data{rotatedSecret{Secret: fresh, PreviousSecretExpiresAt: d.PreviousSecretExpiresAt}})
}

// testDestination answers POST /api/v1/destinations/:id/test: a signed
// request now, of an event that is not stored.
func (a *API) testDestination(c echo.Context) error {
	id, err := destinationID(c)
	if err != nil {
		return err
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	var req struct {
		Payload json.RawMessage `json:"payload"`
	}
	if b != nil {
		if err := decodeBody(b, fieldSet{"payload": nil}, &req); err != nil {
			return err
		}
	}
	var payload json.RawMessage
	if len(req.Payload) > 0 && string(req.Payload) != "null" {
		var buf bytes.Buffer
		if err := json.Compact(&buf, req.Payload); err != nil {
			return problem.New(http.StatusBadRequest, problem.Invalid, "payload is not JSON")
		}
		payload = buf.Bytes()
	}
	d, err := a.store.GetDestination(c.Request().Context(), id)
	if err != nil {
		return storeErr(err, "destination")
	}
	if a.forwarder == nil {
		return problem.New(http.StatusServiceUnavailable, outcome.Internal, "forwarding is not running")
	}
	res := a.forwarder.Test(c.Request().Context(), d, payload)
	a.log.Info("destination tested", "destination", d.ID, "success", res.Success)
	return c.JSON(http.StatusOK, data{res})
}

// deliveryStatusParam reads the status filter; an unknown status is a 400.
func deliveryStatusParam(c echo.Context) (string, error) {
	s := c.QueryParam("status")
	if s != "" && s != destination.Pending && s != destination.Succeeded && s != destination.Failed {
		return "", problem.New(http.StatusBadRequest, problem.Invalid, "status must be pending, succeeded or failed")
	}
	return s, nil
}

// listDestinationDeliveries answers GET /api/v1/destinations/:id/deliveries.
func (a *API) listDestinationDeliveries(c echo.Context) error {
	id, err := destinationID(c)
	if err != nil {
		return err
	}
	p, err := page(c)
	if err != nil {
		return err
	}
	var f store.DeliveryFilter
	if f.Status, err = deliveryStatusParam(c); err != nil {
		return err
	}
	if f.EventID = c.QueryParam("event_id"); f.EventID != "" && !event.ValidID(f.EventID) {
		return problem.New(http.StatusBadRequest, problem.Invalid, "event_id must be an event id (evt_...)")
	}
	ctx := c.Request().Context()
	if _, err := a.store.GetDestination(ctx, id); err != nil {
		return storeErr(err, "destination")
	}
	rows, next, err := a.store.ListDeliveries(ctx, id, f, p)
	if err != nil {
		return storeErr(err, "delivery")
	}
	if rows == nil {
		rows = []store.Delivery{}
	}
	return c.JSON(http.StatusOK, list{Data: rows, NextCursor: nextCursor(next)})
}

// deliveryView is a delivery with its attempts.
type deliveryView struct {
	store.Delivery
	AttemptLog []store.Attempt `json:"attempt_log"`
}

// deliveryID reads the :id parameter of a delivery route.
func deliveryID(c echo.Context) (string, error) {
	id := c.Param("id")
	if !event.ValidPrefixedID("dlv_", id) {
		return "", problem.New(http.StatusNotFound, outcome.NotFound, "delivery not found")
	}
	return id, nil
}

// getDelivery answers GET /api/v1/deliveries/:id.
func (a *API) getDelivery(c echo.Context) error {
	id, err := deliveryID(c)
	if err != nil {
		return err
	}
	d, attempts, err := a.store.GetDelivery(c.Request().Context(), id)
	if err != nil {
		return storeErr(err, "delivery")
	}
	if attempts == nil {
		attempts = []store.Attempt{}
	}
	return c.JSON(http.StatusOK, data{deliveryView{Delivery: d, AttemptLog: attempts}})
}

// retryDelivery answers POST /api/v1/deliveries/:id/retry.
func (a *API) retryDelivery(c echo.Context) error {
	id, err := deliveryID(c)
	if err != nil {
		return err
	}
	d, err := a.store.RetryDelivery(c.Request().Context(), id)
	if errors.Is(err, store.ErrDestinationGone) {
		return problem.New(http.StatusConflict, problem.Conflict, "the delivery's destination was deleted")
	}
	if err != nil {
		return storeErr(err, "delivery")
	}
	a.wakeForwarder()
	return c.JSON(http.StatusAccepted, data{d})
}

// recoverDeliveries answers POST /api/v1/destinations/:id/recover.
func (a *API) recoverDeliveries(c echo.Context) error {
	id, err := destinationID(c)
	if err != nil {
		return err
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	if b == nil {
		return problem.New(http.StatusBadRequest, problem.Invalid, `request body must be a JSON object with "since"`)
	}
	var req struct {
		Since *string `json:"since"`
	}
	if err := decodeBody(b, fieldSet{"since": nil}, &req); err != nil {
		return err
	}
	var since time.Time
	if req.Since != nil {
		since, err = time.Parse(time.RFC3339Nano, *req.Since)
	}
	if req.Since == nil || err != nil {
		return invalid([]trigger.FieldError{{Field: "since", Message: "must be an RFC 3339 time such as 2026-11-28T10:00:00Z"}})
	}
	ctx := c.Request().Context()
	if _, err := a.store.GetDestination(ctx, id); err != nil {
		return storeErr(err, "destination")
	}
	n, err := a.store.RecoverDeliveries(ctx, id, since)
	if err != nil {
		return storeErr(err, "destination")
	}
	a.log.Info("deliveries recovered", "destination", id, "requeued", n)
	a.wakeForwarder()
	return c.JSON(http.StatusOK, data{map[string]int64{"requeued": n}})
}

// eventDeliveries answers GET /api/v1/events/:id/deliveries.
func (a *API) eventDeliveries(c echo.Context) error {
	ctx := c.Request().Context()
	ev, err := a.store.GetEvent(ctx, c.Param("id"))
	if err != nil {
		return storeErr(err, "event")
	}
	rows, err := a.store.EventDeliveries(ctx, ev.ID)
	if err != nil {
		return storeErr(err, "event")
	}
	if rows == nil {
		rows = []store.Delivery{}
	}
	return c.JSON(http.StatusOK, data{rows})
}

// wakeForwarder has deliveries made due now attempted without waiting for
// the forwarder's next look.
func (a *API) wakeForwarder() {
	if a.forwarder != nil {
		a.forwarder.Wake()
	}
}
