package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/api"
	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/verify"
)

// triggerData is what the trigger page shows.
type triggerData struct {
	triggerState
	// Outcomes are the request counts per outcome, in the contract's
	// order.
	Outcomes   []outcomeCount
	Presets    []string
	Algorithms []string
	// Mapping and Schema are the JSON documents, indented.
	Mapping, Schema string
	// Input holds what a refused form sent, to show it again.
	Input map[string]string
	// Path is the page's own path.
	Path string
}

type outcomeCount struct {
	Outcome  string
	N        int64
	Rejected bool
}

// pagePath is the console path of trigger ref's page, plus rest.
func pagePath(ref, rest string) string {
	return "/console/triggers/" + url.PathEscape(ref) + rest
}

// triggerState is a trigger as the API shows it: itself, its webhook and
// its keys.
type triggerState struct {
	Trigger api.Trigger
	Webhook api.Webhook
	Keys    []api.Key
}

// readTrigger reads trigger ref's state through the API.
func (h *Console) readTrigger(c echo.Context, ref string) (triggerState, error) {
	var t triggerState
	if err := h.call(c, http.MethodGet, "/api/v1/triggers/"+url.PathEscape(ref), nil, &t.Trigger); err != nil {
		return t, err
	}
	if err := h.call(c, http.MethodGet, triggerPath(ref, ""), nil, &t.Webhook); err != nil {
		return t, err
	}
	if err := h.call(c, http.MethodGet, triggerPath(ref, "/keys"), nil, &t.Keys); err != nil {
		return t, err
	}
	return t, nil
}

// loadTrigger reads what the trigger page shows through the API.
func (h *Console) loadTrigger(c echo.Context, ref string) (*triggerData, error) {
	t, err := h.readTrigger(c, ref)
	if err != nil {
		return nil, err
	}
	d := &triggerData{triggerState: t, Presets: verify.Presets(), Algorithms: []string{"sha256", "sha512", "sha1"}, Path: pagePath(ref, "")}
	for _, o := range outcome.All {
		d.Outcomes = append(d.Outcomes, outcomeCount{Outcome: o, N: d.Webhook.Stats.Requests[o], Rejected: outcome.Rejected(o)})
	}
	if len(d.Webhook.Settings.PayloadMapping) > 0 {
		d.Mapping = prettyJSON(d.Webhook.Settings.PayloadMapping)
	}
	if s := d.Trigger.PayloadSchema; len(s) > 0 && string(s) != "null" {
		d.Schema = prettyJSON(s)
	}
	return d, nil
}

// triggerPage answers GET /console/triggers/:ref.
func (h *Console) triggerPage(c echo.Context) error {
	d, err := h.loadTrigger(c, c.Param("ref"))
	if err != nil {
		return err
	}
	return h.render(c, http.StatusOK, "trigger", view{Title: d.Trigger.Ref, Section: "triggers", Data: d})
}

// refused shows the trigger page again after a form the API refused:
// its messages next to the fields, and what was sent.
func (h *Console) refused(c echo.Context, ref, section string, ae *apiError, input map[string]string) error {
	d, err := h.loadTrigger(c, ref)
	if err != nil {
		return err
	}
	d.Input = input
	if section == "mapping" && input["payload_mapping"] != "" {
		d.Mapping = input["payload_mapping"]
	}
	errs := map[string]string{}
	for f, m := range ae.Fields {
		if strings.HasPrefix(f, "ip_allowlist.cidrs[") {
			// Only the CIDR being added can be wrong: the others were
			// accepted before.
			f = "cidr"
		}
		if prev, ok := errs[f]; ok {
			m = prev + "; " + m
		}
		errs[f] = m
	}
	if len(errs) == 0 {
		errs[section] = ae.Detail
	}
	return h.render(c, ae.Status, "trigger", view{Title: d.Trigger.Ref, Section: "triggers", Data: d, Errors: errs,
		Flash: &flash{Kind: "error", Message: "Nothing was changed: " + ae.Detail}})
}

// numberOrText is a form value as JSON: a number when it reads as one,
// else the text, for the API to refuse in its own words.
func numberOrText(s string) any {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return s
}

// settingsSections names what each settings form changes, for messages.
var settingsSections = map[string]string{
	"hmac":            "signature settings",
	"secret-generate": "signing secret",
	"secret-set":      "signing secret",
	"rate-limit":      "rate limit",
	"allowlist":       "IP allowlist",
	"cidr-add":        "IP allowlist",
	"cidr-remove":     "IP allowlist",
	"size":            "payload size limit",
	"mapping":         "payload mapping",
	"advanced":        "delivery id, split and expected interval",
}

// saveSettings answers POST /console/triggers/:ref/settings/:section: one
// form of the trigger page, sent to the API as a PATCH of that part of the
// settings.
func (h *Console) saveSettings(c echo.Context) error {
	ref, section := c.Param("ref"), c.Param("section")
	what, ok := settingsSections[section]
	if !ok {
		return echo.ErrNotFound
	}
	form := func(name string) string { return strings.TrimSpace(c.FormValue(name)) }
	input := map[string]string{}
	var patch any
	switch section {
	case "hmac":
		hm := map[string]any{"enabled": c.FormValue("enabled") != "", "preset": form("preset"), "algorithm": form("algorithm"), "header": form("header")}
		// The form shows the effective values, defaults included; only a
		// changed one is sent, so that a default stays a default.
		for _, k := range []string{"tolerance_seconds", "rotation_grace_seconds"} {
			if v := form(k); v != "" && v != form(k+"_was") {
				hm[k] = numberOrText(v)
			}
		}
		patch = map[string]any{"hmac": hm}
	case "secret-generate":
		// A generated secret is one to sign with: it turns checks on.
		patch = map[string]any{"hmac": map[string]any{"enabled": true, "secret": ""}}
	case "secret-set":
		s := c.FormValue("secret")
		if strings.TrimSpace(s) == "" {
			return h.refused(c, ref, section, &apiError{Status: http.StatusUnprocessableEntity, Detail: "paste the secret first",
				Fields: map[string]string{"hmac.secret": "must not be empty"}}, nil)
		}
		patch = map[string]any{"hmac": map[string]any{"secret": strings.TrimSpace(s)}}
	case "rate-limit":
		patch = map[string]any{"rate_limit": map[string]any{"enabled": c.FormValue("enabled") != "",
			"requests": numberOrText(form("requests")), "window_seconds": numberOrText(form("window_seconds"))}}
	case "allowlist":
		patch = map[string]any{"ip_allowlist": map[string]any{"enabled": c.FormValue("enabled") != ""}}
	case "cidr-add", "cidr-remove":
		var wh api.Webhook
		if err := h.call(c, http.MethodGet, triggerPath(ref, ""), nil, &wh); err != nil {
			return err
		}
		cidrs := []string{}
		cidr := form("cidr")
		input["cidr"] = cidr
		for _, x := range wh.Settings.IPAllowlist.CIDRs {
			if section == "cidr-remove" && x == cidr {
				continue
			}
			cidrs = append(cidrs, x)
		}
		if section == "cidr-add" {
			cidrs = append(cidrs, cidr)
		}
		patch = map[string]any{"ip_allowlist": map[string]any{"cidrs": cidrs}}
	case "size":
		patch = map[string]any{"payload_size_limit_kb": numberOrText(form("payload_size_limit_kb"))}
	case "mapping":
		raw := form("payload_mapping")
		input["payload_mapping"] = raw
		if raw == "" {
			raw = "null"
		}
		if !json.Valid([]byte(raw)) {
			return h.refused(c, ref, section, &apiError{Status: http.StatusBadRequest, Detail: "the mapping is not valid JSON",
				Fields: map[string]string{"payload_mapping": "must be a JSON object of output field to JSONPath expression, or empty"}}, input)
		}
		patch = map[string]any{"payload_mapping": json.RawMessage(raw)}
	case "advanced":
		patch = map[string]any{"delivery_id": form("delivery_id"), "split": form("split"),
			"expected_interval_seconds": numberOrText(form("expected_interval_seconds"))}
		for _, k := range []string{"delivery_id", "split", "expected_interval_seconds"} {
			input[k] = form(k)
		}
	}
	var wh api.Webhook
	err := h.call(c, http.MethodPatch, triggerPath(ref, ""), patch, &wh)
	var ae *apiError
	if errors.As(err, &ae) && (ae.Status == http.StatusUnprocessableEntity || ae.Status == http.StatusBadRequest) {
		return h.refused(c, ref, section, ae, input)
	}
	if err != nil {
		return err
	}
	f := &flash{Kind: "ok", Message: "Saved the " + what + "."}
	if s := wh.Settings.HMAC.Secret; s != "" {
		f.Message = "Generated a new signing secret; signature checks are on."
		if exp := wh.Settings.HMAC.PreviousSecretExpiresAt; exp != nil {
			f.Message += " The previous secret keeps verifying until " + when(exp) + "."
		}
		f.Secret, f.SecretLabel = s, "Signing secret"
	}
	return h.redirect(c, pagePath(ref, "#"+sectionAnchor(section)), f)
}

// sectionAnchor is the id of the part of the trigger page a form is in.
func sectionAnchor(section string) string {
	switch section {
	case "hmac", "secret-generate", "secret-set":
		return "signatures"
	case "allowlist", "cidr-add", "cidr-remove":
		return "allowlist"
	case "rate-limit", "size", "advanced":
		return "limits"
	}
	return section
}

// regeneratePage answers GET /console/triggers/:ref/regenerate: the
// confirmation, which the page works without script for.
func (h *Console) regeneratePage(c echo.Context) error {
	var t api.Trigger
	if err := h.call(c, http.MethodGet, "/api/v1/triggers/"+url.PathEscape(c.Param("ref")), nil, &t); err != nil {
		return err
	}
	return h.render(c, http.StatusOK, "regenerate", view{Title: "Regenerate the webhook URL of " + t.Ref, Section: "triggers", Data: t})
}

// regenerate answers POST /console/triggers/:ref/regenerate.
func (h *Console) regenerate(c echo.Context) error {
	ref := c.Param("ref")
	body := map[string]any{}
	if g := strings.TrimSpace(c.FormValue("grace_seconds")); g != "" {
		body["grace_seconds"] = numberOrText(g)
	}
	var r api.RegeneratedKey
	err := h.call(c, http.MethodPost, triggerPath(ref, "/regenerate"), body, &r)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusUnprocessableEntity {
		var t api.Trigger
		if err := h.call(c, http.MethodGet, "/api/v1/triggers/"+url.PathEscape(ref), nil, &t); err != nil {
			return err
		}
		return h.render(c, ae.Status, "regenerate", view{Title: "Regenerate the webhook URL of " + t.Ref, Section: "triggers", Data: t,
			Errors: ae.Fields, Error: ae.Detail})
	}
	if err != nil {
		return err
	}
	msg := "New webhook URL. The old one stopped working at once."
	if !r.PreviousKeyRevoked && r.PreviousKeyExpiresAt != nil {
		msg = "New webhook URL. The old one keeps working until " + when(r.PreviousKeyExpiresAt) + "."
	}
	return h.redirect(c, pagePath(ref, "#keys"), &flash{Kind: "ok", Message: msg, URL: r.WebhookURL, URLLabel: "New webhook URL"})
}

// createKey answers POST /console/triggers/:ref/keys.
func (h *Console) createKey(c echo.Context) error {
	ref := c.Param("ref")
	body := map[string]any{"label": c.FormValue("label")}
	if e := strings.TrimSpace(c.FormValue("expires_in_seconds")); e != "" {
		body["expires_in_seconds"] = numberOrText(e)
	}
	var k api.Key
	err := h.call(c, http.MethodPost, triggerPath(ref, "/keys"), body, &k)
	var ae *apiError
	if errors.As(err, &ae) && (ae.Status == http.StatusUnprocessableEntity || ae.Status == http.StatusBadRequest) {
		return h.refused(c, ref, "keys", ae, map[string]string{"label": c.FormValue("label"), "expires_in_seconds": c.FormValue("expires_in_seconds")})
	}
	if err != nil {
		return err
	}
	return h.redirect(c, pagePath(ref, "#keys"), &flash{Kind: "ok", Message: "Created the key " + k.Label + ".",
		URL: k.URL, URLLabel: "Webhook URL of " + k.Label})
}

// revokeKeyPage answers GET /console/triggers/:ref/keys/:id/revoke.
func (h *Console) revokeKeyPage(c echo.Context) error {
	ref := c.Param("ref")
	var keys []api.Key
	if err := h.call(c, http.MethodGet, triggerPath(ref, "/keys"), nil, &keys); err != nil {
		return err
	}
	for _, k := range keys {
		if strconv.FormatInt(k.ID, 10) == c.Param("id") {
			return h.render(c, http.StatusOK, "revoke", view{Title: "Revoke the key " + k.Label, Section: "triggers",
				Data: struct {
					Ref string
					Key api.Key
				}{ref, k}})
		}
	}
	return &apiError{Status: http.StatusNotFound, Code: outcome.NotFound, Detail: "key not found"}
}

// revokeKey answers POST /console/triggers/:ref/keys/:id/revoke.
func (h *Console) revokeKey(c echo.Context) error {
	ref := c.Param("ref")
	if err := h.call(c, http.MethodDelete, triggerPath(ref, "/keys/"+url.PathEscape(c.Param("id"))), nil, nil); err != nil {
		return err
	}
	return h.redirect(c, pagePath(ref, "#keys"), &flash{Kind: "ok", Message: "Revoked the key: its URL answers 404 from now on."})
}
