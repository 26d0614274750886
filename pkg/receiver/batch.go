package receiver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/payload"
	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/store"
)

// batchAnswer is the body of a 200 for a split request.
type batchAnswer struct {
	Data batchData `json:"data"`
}

type batchData struct {
	Events     []batchEvent `json:"events"`
	ReceivedAt time.Time    `json:"received_at"`
	TriggerRef string       `json:"trigger_ref"`
}

type batchEvent struct {
	EventID   string `json:"event_id"`
	Duplicate bool   `json:"duplicate"`
}

// acceptBatch stores each element of a split body as an event: the
// schema, the mapping and the delivery id apply to each element, and the
// elements are stored in one transaction, or none is. The request has one
// audit record, counting the events stored.
func (h *Handler) acceptBatch(c echo.Context, rq *request, raw json.RawMessage, value any, hdr http.Header) error {
	wh := rq.key.wh
	els, err := wh.split.Elements(raw, value)
	switch {
	case errors.Is(err, payload.ErrNoElements):
		return h.reject(c, rq, problem.New(http.StatusUnprocessableEntity, outcome.SchemaMismatch,
			"the trigger splits bodies at %s, which matched no element", wh.split))
	case errors.Is(err, payload.ErrTooManyElements):
		return h.reject(c, rq, problem.New(http.StatusRequestEntityTooLarge, outcome.TooLarge,
			"the body holds more than %d elements at %s", payload.MaxElements, wh.split))
	case err != nil:
		return h.reject(c, rq, problem.New(http.StatusBadRequest, outcome.InvalidPayload, "body could not be split"))
	}
	if wh.schema != nil {
		if p := batchSchemaProblem(wh.schema, els); p != nil {
			return h.reject(c, rq, p)
		}
	}
	at := event.Time(rq.start)
	var kept [8]keptHeader
	md := metadata{
		keyPrefix: rq.keyPrefix, keyLabel: rq.key.label, receivedAt: at, sourceIP: rq.ip, userAgent: rq.ua,
		headers: keptHeaderValues(hdr, kept[:0]),
	}
	evs := make([]*event.Event, len(els))
	for i, el := range els {
		body := el.Raw
		if wh.mapping != nil {
			if body, err = wh.mapping.Apply(el.Value); err != nil {
				return h.reject(c, rq, &problem.Error{Status: http.StatusInternalServerError, Code: outcome.Internal,
					Detail: "payload mapping failed at " + el.Pointer, Err: err})
			}
		}
		// A delivery id from a header names the request: each element
		// gets it with its index, so that a repeated request repeats
		// every element and nothing else.
		md.deliveryID = wh.deliveryID(hdr, el.Value)
		if md.deliveryID != "" && wh.deliveryPath == nil {
			md.deliveryID += "#" + strconv.Itoa(i)
		}
		ev := &event.Event{
			ID: event.MustNewID(at), TriggerID: wh.triggerID, TriggerRef: wh.ref, Source: event.Source,
			Payload: body, Metadata: appendMetadata(make([]byte, 0, 512), &md), ReceivedAt: at,
		}
		if md.deliveryID != "" {
			did := md.deliveryID
			ev.DeliveryID = &did
		}
		evs[i] = ev
	}
	res, err := h.commit(c, rq, &store.Record{Batch: evs, Audit: h.auditRow(rq, http.StatusOK, outcome.Accepted, "")})
	if err != nil {
		return err
	}
	d := batchData{Events: make([]batchEvent, len(res.Elements)), ReceivedAt: at, TriggerRef: wh.ref}
	for i, e := range res.Elements {
		d.Events[i] = batchEvent{EventID: e.EventID, Duplicate: e.Duplicate}
	}
	return c.JSON(http.StatusOK, batchAnswer{Data: d})
}

// batchSchemaProblem checks every element against the schema and returns
// a 422 listing the violations of every element that fails, their
// pointers from the body's root ("/3/email"), or nil.
func batchSchemaProblem(schema *payload.Schema, els []payload.Element) *problem.Error {
	var all []payload.Violation
	var first string
	for _, el := range els {
		err := schema.Validate(el.Value)
		if err == nil {
			continue
		}
		var se *payload.SchemaError
		if !errors.As(err, &se) {
			return problem.New(http.StatusUnprocessableEntity, outcome.SchemaMismatch, "element %s does not match the trigger's schema", el.Pointer)
		}
		if first == "" {
			first = el.Pointer
		}
		for _, v := range se.Violations {
			v.Pointer = el.Pointer + v.Pointer
			all = append(all, v)
		}
	}
	if first == "" {
		return nil
	}
	// The detail names the first violation by its pointer from the
	// body's root, which starts with its element's.
	return schemaProblem(&payload.SchemaError{Violations: all})
}
