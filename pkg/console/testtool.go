package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/api"
	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/publish"
	"github.com/inlet-dev/inlet/pkg/verify"
)

// testData is what the test tool shows: the form, and the result of the
// last send.
type testData struct {
	triggerState
	// Body, Headers, KeyID and Sign are the form's values.
	Body    string
	Headers string
	KeyID   int64
	Sign    bool
	// BodySource says where the prefilled body comes from.
	BodySource string
	// SigningNote explains how the request will be or was signed.
	SigningNote string
	// Subject is where the trigger's events are published.
	Subject string
	Result  *testResult
}

// testResult is the receiver's answer to a test request.
type testResult struct {
	Status   int
	Outcome  string
	Detail   string
	Accepted bool
	EventIDs []string
	// Duplicate is set when the receiver matched an earlier event.
	Duplicate bool
	Subject   string
	// Signed names the headers the signature was sent in.
	Signed []string
	Body   string
	// Violations lists a schema mismatch's violations, as JSON.
	Violations string
}

// testPage answers GET /console/triggers/:ref/test.
func (h *Console) testPage(c echo.Context) error {
	d, err := h.loadTest(c, c.Param("ref"))
	if err != nil {
		return err
	}
	d.Body, d.BodySource = h.exampleBody(c, d)
	d.Sign = d.Webhook.Settings.HMAC.Enabled
	return h.render(c, http.StatusOK, "testtool", view{Title: "Send a test to " + d.Trigger.Ref, Section: "triggers", Data: d})
}

func (h *Console) loadTest(c echo.Context, ref string) (*testData, error) {
	t, err := h.readTrigger(c, ref)
	if err != nil {
		return nil, err
	}
	d := &testData{triggerState: t}
	d.Subject = publish.Subject(h.subjectPrefix, d.Trigger.Ref)
	d.SigningNote = signingNote(d.Webhook.Settings)
	return d, nil
}

// signingNote says how the tool signs requests for settings s.
func signingNote(s api.Settings) string {
	hm := s.HMAC
	switch {
	case !hm.Enabled:
		return "Signature checks are off for this trigger: requests are sent unsigned."
	case hm.Preset == "sendgrid":
		return "SendGrid signs with a private key only SendGrid holds; inlet keeps the public key, so the console cannot sign. The request is sent unsigned and the receiver will refuse it (401 bad_signature)."
	case !hm.SecretSet:
		return "Signature checks are on but no secret is set: every request is refused until one is."
	case hm.Preset == "":
		return "Signed on the server with the trigger's secret: HMAC-" + strings.ToUpper(hm.Algorithm) + " of the body, as a generic sender does."
	}
	return "Signed on the server with the trigger's secret, the way " + hm.Preset + " signs its deliveries."
}

// exampleBody is the body the tool starts with: the payload of the
// trigger's last event, else an example made from its JSON Schema, else
// an empty object. A mapped trigger's events hold the mapped payload,
// not what senders send, so it starts from the schema.
func (h *Console) exampleBody(c echo.Context, d *testData) (string, string) {
	if len(d.Webhook.Settings.PayloadMapping) == 0 {
		var evs []struct {
			ID      string          `json:"id"`
			Payload json.RawMessage `json:"payload"`
		}
		q := "/api/v1/events?limit=1&trigger=" + url.QueryEscape(d.Trigger.Ref)
		if err := h.call(c, http.MethodGet, q, nil, &evs); err == nil && len(evs) > 0 && len(evs[0].Payload) > 0 && string(evs[0].Payload) != "null" {
			return prettyJSON(evs[0].Payload), "the payload of the last event, " + evs[0].ID
		}
	}
	if s := d.Trigger.PayloadSchema; len(s) > 0 && string(s) != "null" {
		var schema map[string]any
		if json.Unmarshal(s, &schema) == nil {
			ex := inBatch(exampleOf(schema, 0), d.Webhook.Settings.Split)
			return prettyJSON(ex), "an example made from the trigger's JSON Schema: replace the placeholders"
		}
	}
	return "{}", "an empty object: the trigger has no events and no schema yet"
}

// inBatch puts an example element where a split such as "$[*]" or
// "$.events[*]" finds the elements of a batch; other splits leave it as
// it is.
func inBatch(element any, split string) any {
	path, ok := strings.CutSuffix(split, "[*]")
	if !ok || !strings.HasPrefix(path, "$") {
		return element
	}
	var out any = []any{element}
	names := strings.Split(strings.TrimPrefix(strings.TrimPrefix(path, "$"), "."), ".")
	for i := len(names) - 1; i >= 0; i-- {
		if names[i] == "" {
			continue
		}
		out = map[string]any{names[i]: out}
	}
	return out
}

// exampleOf makes a value that a simple schema accepts: its const, first
// enum value, default or example, else a placeholder of its type, with
// the required properties of objects.
func exampleOf(schema map[string]any, depth int) any {
	if depth > 8 {
		return nil
	}
	if v, ok := schema["const"]; ok {
		return v
	}
	if e, ok := schema["enum"].([]any); ok && len(e) > 0 {
		return e[0]
	}
	if v, ok := schema["default"]; ok {
		return v
	}
	if ex, ok := schema["examples"].([]any); ok && len(ex) > 0 {
		return ex[0]
	}
	typ, _ := schema["type"].(string)
	if ts, ok := schema["type"].([]any); ok && len(ts) > 0 {
		typ, _ = ts[0].(string)
	}
	if typ == "" {
		if _, ok := schema["properties"]; ok {
			typ = "object"
		}
	}
	switch typ {
	case "object":
		out := map[string]any{}
		props, _ := schema["properties"].(map[string]any)
		req, _ := schema["required"].([]any)
		for _, r := range req {
			name, _ := r.(string)
			sub, _ := props[name].(map[string]any)
			out[name] = exampleOf(sub, depth+1)
		}
		return out
	case "array":
		items, _ := schema["items"].(map[string]any)
		if n, _ := schema["minItems"].(float64); n > 0 && items != nil {
			return []any{exampleOf(items, depth+1)}
		}
		return []any{}
	case "string":
		switch schema["format"] {
		case "date-time":
			return time.Now().UTC().Format(time.RFC3339)
		case "email":
			return "someone@example.com"
		case "uri", "url":
			return "https://example.com/"
		}
		return "string"
	case "integer", "number":
		if m, ok := schema["minimum"].(float64); ok {
			return m
		}
		return 0
	case "boolean":
		return false
	}
	return nil
}

// parseHeaders reads the tool's extra headers, "Name: value" a line.
func parseHeaders(text string) (http.Header, error) {
	h := http.Header{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("line %d is not \"Name: value\"", i+1)
		}
		switch textproto.CanonicalMIMEHeaderKey(name) {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection":
			return nil, fmt.Errorf("line %d: %s is set by the tool", i+1, name)
		}
		h.Add(name, strings.TrimSpace(value))
	}
	return h, nil
}

// sendTest answers POST /console/triggers/:ref/test: it sends the body
// through the real receiver, in-process, to one of the trigger's keys,
// signed with the trigger's secret as its scheme says, and shows the
// answer.
func (h *Console) sendTest(c echo.Context) error {
	ref := c.Param("ref")
	d, err := h.loadTest(c, ref)
	if err != nil {
		return err
	}
	d.Body = c.FormValue("body")
	d.Headers = c.FormValue("headers")
	d.Sign = c.FormValue("sign") != ""
	d.KeyID, _ = strconv.ParseInt(c.FormValue("key_id"), 10, 64)
	show := func(status int, errs map[string]string) error {
		return h.render(c, status, "testtool", view{Title: "Send a test to " + d.Trigger.Ref, Section: "triggers", Data: d, Errors: errs})
	}

	hdr, err := parseHeaders(d.Headers)
	if err != nil {
		return show(http.StatusUnprocessableEntity, map[string]string{"headers": err.Error()})
	}
	var key *api.Key
	for i := range d.Keys {
		if d.Keys[i].ID == d.KeyID || (d.KeyID == 0 && d.Keys[i].Primary) {
			key = &d.Keys[i]
		}
	}
	if key == nil {
		return show(http.StatusUnprocessableEntity, map[string]string{"key_id": "the trigger has no such live key: enable its webhook first"})
	}
	body := []byte(d.Body)
	if hdr.Get("Content-Type") == "" {
		hdr.Set("Content-Type", "application/json")
	}
	path := "/api/v1/webhooks/" + url.PathEscape(key.Key)
	var signed []string
	if d.Sign && d.Webhook.Settings.HMAC.Enabled {
		t, err := h.store.GetTrigger(c.Request().Context(), ref)
		if err != nil {
			return err
		}
		hm := t.Settings.HMAC
		cfg := verify.Config{Preset: hm.Preset, Algorithm: hm.Algorithm, Header: hm.Header}
		if cfg.Preset == "twilio" && !strings.HasPrefix(hdr.Get("Content-Type"), "application/x-www-form-urlencoded") {
			// Twilio signs a JSON body by its hash in the URL.
			path += "?bodySHA256=" + verify.BodySHA256(body)
		}
		// Twilio signs the URL the receiver sees: the public one.
		sig, err := verify.Sign(cfg, []byte(hm.Secret), verify.Request{Header: hdr, Body: body, URL: h.publicURL + path, Now: h.now()})
		switch {
		case errors.Is(err, verify.ErrCannotSign):
		case err != nil:
			d.SigningNote = "Not signed: " + err.Error() + "."
		default:
			for k, v := range sig {
				hdr.Set(k, v)
				signed = append(signed, k)
			}
			sort.Strings(signed)
		}
	}
	if hdr.Get("User-Agent") == "" {
		hdr.Set("User-Agent", "inlet-console-test")
	}
	rec, err := h.serve(c, http.MethodPost, path, body, hdr)
	if err != nil {
		return err
	}
	d.Result = readResult(rec, signed, publish.Subject(h.subjectPrefix, d.Trigger.Ref))
	h.log.Info("console test sent", "trigger_ref", d.Trigger.Ref, "key_prefix", key.Key[:min(8, len(key.Key))],
		"status", d.Result.Status, "outcome", d.Result.Outcome)
	return show(http.StatusOK, nil)
}

// readResult decodes the receiver's answer.
func readResult(rec *recorder, signed []string, subject string) *testResult {
	r := &testResult{Status: rec.status, Signed: signed, Body: prettyJSON(rec.body.Bytes())}
	if rec.status == http.StatusOK {
		var ok struct {
			Data struct {
				EventID   string `json:"event_id"`
				Duplicate bool   `json:"duplicate"`
				Events    []struct {
					EventID   string `json:"event_id"`
					Duplicate bool   `json:"duplicate"`
				} `json:"events"`
			} `json:"data"`
		}
		_ = json.Unmarshal(rec.body.Bytes(), &ok)
		r.Accepted, r.Subject, r.Outcome = true, subject, outcome.Accepted
		if ok.Data.EventID != "" {
			r.EventIDs = append(r.EventIDs, ok.Data.EventID)
			r.Duplicate = ok.Data.Duplicate
		}
		for _, e := range ok.Data.Events {
			r.EventIDs = append(r.EventIDs, e.EventID)
			r.Duplicate = r.Duplicate || e.Duplicate
		}
		if r.Duplicate {
			r.Outcome = outcome.Duplicate
		}
		return r
	}
	var p struct {
		Code       string          `json:"code"`
		Detail     string          `json:"detail"`
		Violations json.RawMessage `json:"violations"`
	}
	_ = json.Unmarshal(rec.body.Bytes(), &p)
	r.Outcome, r.Detail = p.Code, p.Detail
	if len(bytes.TrimSpace(p.Violations)) > 0 {
		r.Violations = prettyJSON(p.Violations)
	}
	return r
}
