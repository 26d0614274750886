package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

var keyRe = regexp.MustCompile(`^wh_[A-Za-z0-9]{32}$`)

type stateResp struct {
	Data struct {
		ID             int64   `json:"id"`
		Ref            string  `json:"ref"`
		WebhookEnabled bool    `json:"webhook_enabled"`
		WebhookKey     *string `json:"webhook_key"`
		WebhookURL     *string `json:"webhook_url"`
	} `json:"data"`
}

type regenResp struct {
	Data struct {
		WebhookKey           string     `json:"webhook_key"`
		WebhookURL           string     `json:"webhook_url"`
		PreviousKeyRevoked   bool       `json:"previous_key_revoked"`
		PreviousKeyExpiresAt *time.Time `json:"previous_key_expires_at"`
	} `json:"data"`
}

func TestKeyLifecycle(t *testing.T) {
	v := newEnv(t)
	tr := v.createTrigger("github.push")
	ctx := context.Background()

	var got struct{ Data Trigger }
	v.call(http.MethodGet, "/api/v1/triggers/github.push", "", http.StatusOK, &got)
	if got.Data.WebhookEnabled || got.Data.WebhookKey != nil || got.Data.WebhookURL != nil {
		t.Fatalf("new trigger: %+v, want disabled without key", got.Data)
	}

	var en stateResp
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/enable", "", http.StatusOK, &en)
	if !en.Data.WebhookEnabled || en.Data.WebhookKey == nil || !keyRe.MatchString(*en.Data.WebhookKey) {
		t.Fatalf("enable: %+v, want enabled with a key matching %s", en.Data, keyRe)
	}
	key1 := *en.Data.WebhookKey
	if en.Data.WebhookURL == nil || *en.Data.WebhookURL != publicURL+"/api/v1/webhooks/"+key1 {
		t.Errorf("enable: webhook_url = %v, want %s/api/v1/webhooks/<key>", en.Data.WebhookURL, publicURL)
	}
	if en.Data.ID != tr.ID || en.Data.Ref != tr.Ref {
		t.Errorf("enable: id, ref = %d, %s, want %d, %s", en.Data.ID, en.Data.Ref, tr.ID, tr.Ref)
	}

	// Enabling again, by numeric id, keeps the key.
	v.call(http.MethodPost, fmt.Sprintf("/api/v1/triggers/%d/webhooks/enable", tr.ID), "", http.StatusOK, &en)
	if *en.Data.WebhookKey != key1 {
		t.Errorf("second enable changed the key")
	}

	// Regenerate without a body: the old key is gone at once.
	var rg regenResp
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/regenerate", "", http.StatusOK, &rg)
	key2 := rg.Data.WebhookKey
	if !keyRe.MatchString(key2) || key2 == key1 || rg.Data.WebhookURL != publicURL+"/api/v1/webhooks/"+key2 {
		t.Fatalf("regenerate: %+v", rg.Data)
	}
	if !rg.Data.PreviousKeyRevoked || rg.Data.PreviousKeyExpiresAt != nil {
		t.Errorf("regenerate without grace: revoked=%v expires=%v, want true, null", rg.Data.PreviousKeyRevoked, rg.Data.PreviousKeyExpiresAt)
	}
	if _, err := v.store.LookupKey(ctx, key1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old key after regenerate: err = %v, want ErrNotFound", err)
	}
	var count int
	if err := v.store.DB().Get(&count, `SELECT count(*) FROM webhook_keys WHERE hash = $1`, trigger.HashKey(key1)); err != nil || count != 0 {
		t.Errorf("old key rows = %d (%v), want 0", count, err)
	}
	if wh, err := v.store.LookupKey(ctx, key2); err != nil || wh.Trigger.ID != tr.ID {
		t.Errorf("new key lookup: %v", err)
	}

	// With a grace period the old key keeps working until it expires.
	before := time.Now()
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/regenerate", `{"grace_seconds": 3600}`, http.StatusOK, &rg)
	key3 := rg.Data.WebhookKey
	if rg.Data.PreviousKeyRevoked || rg.Data.PreviousKeyExpiresAt == nil {
		t.Fatalf("regenerate with grace: %+v, want previous_key_revoked false and an expiry", rg.Data)
	}
	if exp := *rg.Data.PreviousKeyExpiresAt; exp.Before(before.Add(3599*time.Second)) || exp.After(time.Now().Add(3601*time.Second)) {
		t.Errorf("previous_key_expires_at = %v, want about an hour from now", exp)
	}
	wh, err := v.store.LookupKey(ctx, key2)
	if err != nil || wh.KeyExpiresAt == nil {
		t.Errorf("key in grace: %+v, %v, want live with an expiry", wh, err)
	}
	if _, err := v.store.LookupKey(ctx, key3); err != nil {
		t.Errorf("newest key: %v", err)
	}

	// The webhook view shows the current key.
	var w struct{ Data Webhook }
	v.call(http.MethodGet, "/api/v1/triggers/github.push/webhooks", "", http.StatusOK, &w)
	if w.Data.WebhookKey == nil || *w.Data.WebhookKey != key3 || !w.Data.Enabled || w.Data.CreatedAt == nil {
		t.Errorf("GET webhooks: %+v", w.Data)
	}

	// Disable keeps the key, which stops being enabled.
	var dis stateResp
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/disable", "", http.StatusOK, &dis)
	if dis.Data.WebhookEnabled || dis.Data.WebhookKey == nil || *dis.Data.WebhookKey != key3 {
		t.Errorf("disable: %+v", dis.Data)
	}
	v.call(http.MethodGet, "/api/v1/triggers/github.push", "", http.StatusOK, &got)
	if got.Data.WebhookEnabled {
		t.Error("trigger still enabled after disable")
	}
	if wh, err := v.store.LookupKey(ctx, key3); err != nil || wh.Trigger.WebhookEnabled {
		t.Errorf("after disable the receiver sees enabled=%v (%v)", wh.Trigger.WebhookEnabled, err)
	}

	// No answer or log line shows a full key.
	if logs := v.logs.String(); strings.Contains(logs, key1) || strings.Contains(logs, key2) || strings.Contains(logs, key3) {
		t.Errorf("logs carry a full key:\n%s", logs)
	}
}

// TestRegenerateRevokesEveryReplacedKey: a regenerate without grace stops
// every replaced key, also one an earlier regenerate left in its grace
// period, and says so truthfully.
func TestRegenerateRevokesEveryReplacedKey(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("github.push")
	ctx := context.Background()
	var en stateResp
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/enable", "", http.StatusOK, &en)
	first := *en.Data.WebhookKey

	var rg regenResp
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/regenerate", `{"grace_seconds": 3600}`, http.StatusOK, &rg)
	second := rg.Data.WebhookKey
	if rg.Data.PreviousKeyRevoked {
		t.Fatalf("regenerate with grace answered previous_key_revoked: true")
	}
	if _, err := v.store.LookupKey(ctx, first); err != nil {
		t.Fatalf("key in its grace period: %v", err)
	}
	// A second grace regenerate: both replaced keys keep working, and the
	// answer still says a previous key works.
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/regenerate", `{"grace_seconds": 60}`, http.StatusOK, &rg)
	third := rg.Data.WebhookKey
	if rg.Data.PreviousKeyRevoked {
		t.Errorf("second grace regenerate answered previous_key_revoked: true")
	}
	for _, k := range []string{first, second, third} {
		if _, err := v.store.LookupKey(ctx, k); err != nil {
			t.Errorf("key %s… before the revoking regenerate: %v", k[:8], err)
		}
	}

	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/regenerate", "", http.StatusOK, &rg)
	if !rg.Data.PreviousKeyRevoked || rg.Data.PreviousKeyExpiresAt != nil {
		t.Errorf("regenerate without grace: revoked=%v expires=%v, want true, null", rg.Data.PreviousKeyRevoked, rg.Data.PreviousKeyExpiresAt)
	}
	for _, k := range []string{first, second, third} {
		if _, err := v.store.LookupKey(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("replaced key %s… after a regenerate without grace: err = %v, want ErrNotFound", k[:8], err)
		}
	}
	if _, err := v.store.LookupKey(ctx, rg.Data.WebhookKey); err != nil {
		t.Errorf("the new key: %v", err)
	}
}

func TestRegenerateRejectsBadBodies(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("github.push")
	tests := []struct {
		name, body string
		want       int
	}{
		{"negative", `{"grace_seconds": -1}`, http.StatusUnprocessableEntity},
		{"over a week", `{"grace_seconds": 604801}`, http.StatusUnprocessableEntity},
		{"string", `{"grace_seconds": "60"}`, http.StatusUnprocessableEntity},
		{"fraction", `{"grace_seconds": 1.5}`, http.StatusUnprocessableEntity},
		{"unknown field", `{"grace": 60}`, http.StatusUnprocessableEntity},
		{"malformed", `{"grace_seconds":`, http.StatusBadRequest},
		{"not an object", `[60]`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := v.do(http.MethodPost, "/api/v1/triggers/github.push/webhooks/regenerate", tt.body)
			if rec.Code != tt.want {
				t.Errorf("regenerate %s = %d %s, want %d", tt.body, rec.Code, rec.Body, tt.want)
			}
		})
	}
	if tr, _ := v.store.GetTrigger(context.Background(), "github.push"); tr.Key != "" {
		t.Error("a refused regeneration created a key")
	}
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/regenerate", `{"grace_seconds": 604800}`, http.StatusOK, nil)
	v.call(http.MethodPost, "/api/v1/triggers/no.such/webhooks/regenerate", ``, http.StatusNotFound, nil)
}

func TestPatchValidation(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("github.push")
	// Start from non-default settings so that "unchanged" means something.
	v.call(http.MethodPatch, "/api/v1/triggers/github.push/webhooks",
		`{"hmac":{"enabled":true,"secret":"first-secret"},"ip_allowlist":{"enabled":true,"cidrs":["10.0.0.0/8"]},"payload_mapping":{"a":"$.a"}}`,
		http.StatusOK, nil)

	tests := []struct {
		name, body string
		fields     []string
	}{
		{"bad CIDR", `{"ip_allowlist":{"cidrs":["10.0.0.0/8","300.1.1.1/8"]}}`, []string{"ip_allowlist.cidrs[1]"}},
		{"enabled allowlist without CIDRs", `{"ip_allowlist":{"cidrs":[]}}`, []string{"ip_allowlist.cidrs"}},
		{"unknown algorithm", `{"hmac":{"algorithm":"md5"}}`, []string{"hmac.algorithm"}},
		{"unknown preset", `{"hmac":{"preset":"myspace"}}`, []string{"hmac.preset"}},
		{"bad header", `{"hmac":{"header":"X Sig"}}`, []string{"hmac.header"}},
		{"negative tolerance", `{"hmac":{"tolerance_seconds":-1}}`, []string{"hmac.tolerance_seconds"}},
		{"secret too long", `{"hmac":{"secret":"` + strings.Repeat("s", 1025) + `"}}`, []string{"hmac.secret"}},
		{"negative rotation grace", `{"hmac":{"secret":"x2","rotation_grace_seconds":-1}}`, []string{"hmac.rotation_grace_seconds"}},
		{"bad JSONPath", `{"payload_mapping":{"x":"$.[[["}}`, []string{"payload_mapping"}},
		{"mapping not an object", `{"payload_mapping":["$.a"]}`, []string{"payload_mapping"}},
		{"zero requests", `{"rate_limit":{"enabled":true,"requests":0}}`, []string{"rate_limit.requests"}},
		{"negative window", `{"rate_limit":{"window_seconds":-5}}`, []string{"rate_limit.window_seconds"}},
		{"zero payload limit", `{"payload_size_limit_kb":0}`, []string{"payload_size_limit_kb"}},
		{"negative payload limit", `{"payload_size_limit_kb":-1}`, []string{"payload_size_limit_kb"}},
		{"huge payload limit", `{"payload_size_limit_kb":99999999}`, []string{"payload_size_limit_kb"}},
		{"bad delivery id", `{"delivery_id":"not a header"}`, []string{"delivery_id"}},
		{"unknown top-level field", `{"hmac":{"enabled":false},"retries":3}`, []string{"retries"}},
		{"unknown nested field", `{"hmac":{"enabled":false,"salt":"x"}}`, []string{"hmac.salt"}},
		{"read-only field", `{"hmac":{"secret_set":true}}`, []string{"hmac.secret_set"}},
		{"wrong type", `{"hmac":{"enabled":"yes"}}`, []string{"hmac.enabled"}},
		{"several at once", `{"hmac":{"algorithm":"md5"},"ip_allowlist":{"cidrs":["nope"]},"rate_limit":{"requests":-1}}`,
			[]string{"hmac.algorithm", "rate_limit.requests", "ip_allowlist.cidrs[0]"}},
	}
	before := v.settingsOf("github.push")
	for _, tt := range tests {
		for _, path := range []string{"/api/v1/triggers/github.push/webhooks", "/api/v1/triggers/github.push/webhook"} {
			t.Run(tt.name+path[len(path)-1:], func(t *testing.T) {
				rec := v.do(http.MethodPatch, path, tt.body)
				if rec.Code != http.StatusUnprocessableEntity {
					t.Fatalf("PATCH %s = %d %s, want 422", tt.body, rec.Code, rec.Body)
				}
				p := decodeProblem(t, rec)
				if p.Code != problem.Unprocessable {
					t.Errorf("code = %q, want %q", p.Code, problem.Unprocessable)
				}
				var got []string
				for _, e := range p.Errors {
					got = append(got, e.Field)
					if e.Message == "" {
						t.Errorf("field %s has no message", e.Field)
					}
				}
				if !reflect.DeepEqual(got, tt.fields) {
					t.Errorf("error fields = %v, want %v (%s)", got, tt.fields, rec.Body)
				}
				if strings.Contains(rec.Body.String(), "first-secret") {
					t.Error("the problem shows the secret")
				}
				if after := v.settingsOf("github.push"); !reflect.DeepEqual(after, before) {
					t.Errorf("settings changed by a refused PATCH:\n got %+v\nwant %+v", after, before)
				}
			})
		}
	}

	for _, tt := range []struct{ name, body string }{
		{"malformed", `{"hmac":`},
		{"empty", ``},
		{"array", `[]`},
		{"string", `"x"`},
		{"trailing data", `{} {}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := v.do(http.MethodPatch, "/api/v1/triggers/github.push/webhooks", tt.body)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("PATCH %q = %d %s, want 400", tt.body, rec.Code, rec.Body)
			}
			if p := decodeProblem(t, rec); p.Code != problem.Invalid {
				t.Errorf("code = %q, want %q", p.Code, problem.Invalid)
			}
		})
	}

	t.Run("too large", func(t *testing.T) {
		big := `{"delivery_id":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
		rec := v.do(http.MethodPatch, "/api/v1/triggers/github.push/webhooks", big)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("PATCH of %d bytes = %d, want 413", len(big), rec.Code)
		}
	})

	if after := v.settingsOf("github.push"); !reflect.DeepEqual(after, before) {
		t.Errorf("settings changed by refused PATCHes")
	}
	v.call(http.MethodPatch, "/api/v1/triggers/no.such/webhooks", `{}`, http.StatusNotFound, nil)
}

func TestPatchApplies(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("github.push")
	body := `{
		"hmac": {"enabled": true, "algorithm": "SHA512", "secret": "client-secret", "preset": "github", "tolerance_seconds": 60},
		"rate_limit": {"enabled": true, "requests": 10, "window_seconds": 1},
		"ip_allowlist": {"enabled": true, "cidrs": ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]},
		"payload_size_limit_kb": 64,
		"payload_mapping": {"repo": "$.repository.full_name"},
		"delivery_id": "X-Request-Id"
	}`
	var w struct{ Data Webhook }
	raw := v.call(http.MethodPatch, "/api/v1/triggers/github.push/webhooks", body, http.StatusOK, &w)
	s := w.Data.Settings
	wantHMAC := HMACSettings{Enabled: true, Algorithm: "sha512", Preset: "github", ToleranceSeconds: 60, RotationGraceSeconds: 86400, SecretSet: true}
	if !reflect.DeepEqual(s.HMAC, wantHMAC) {
		t.Errorf("hmac = %+v, want %+v", s.HMAC, wantHMAC)
	}
	if s.RateLimit != (trigger.RateLimit{Enabled: true, Requests: 10, WindowSeconds: 1}) || !s.IPAllowlist.Enabled ||
		len(s.IPAllowlist.CIDRs) != 3 || s.PayloadSizeLimitKB != 64 || s.PayloadMapping["repo"] != "$.repository.full_name" ||
		s.DeliveryID != "X-Request-Id" {
		t.Errorf("settings = %+v", s)
	}
	if strings.Contains(string(raw), "client-secret") || strings.Contains(string(raw), `"secret"`) {
		t.Errorf("PATCH echoes the client's secret: %s", raw)
	}
	if got := v.settingsOf("github.push").HMAC.Secret; got != "client-secret" {
		t.Errorf("stored secret = %q", string(got))
	}

	// A partial patch changes only what it names; null empties the mapping.
	v.call(http.MethodPatch, "/api/v1/triggers/github.push/webhook", `{"rate_limit":{"requests":20},"payload_mapping":null}`, http.StatusOK, &w)
	s = w.Data.Settings
	if s.RateLimit.Requests != 20 || s.RateLimit.WindowSeconds != 1 || !s.RateLimit.Enabled || len(s.PayloadMapping) != 0 ||
		s.PayloadSizeLimitKB != 64 || !s.HMAC.Enabled || s.HMAC.Preset != "github" {
		t.Errorf("after a partial patch: %+v", s)
	}
	if !strings.Contains(string(v.call(http.MethodGet, "/api/v1/triggers/github.push/webhooks", "", http.StatusOK, nil)), `"payload_mapping":{}`) {
		t.Error("an empty mapping is not shown as {}")
	}
}

func TestSecretGeneratedOnce(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("github.push")

	var w struct{ Data Webhook }
	v.call(http.MethodPatch, "/api/v1/triggers/github.push/webhooks", `{"hmac":{"enabled":true}}`, http.StatusOK, &w)
	secret := w.Data.Settings.HMAC.Secret
	if !regexp.MustCompile(`^whsec_[A-Za-z0-9]{40}$`).MatchString(secret) || !w.Data.Settings.HMAC.SecretSet {
		t.Fatalf("PATCH enabling HMAC: secret %q, secret_set %v; want a generated secret", secret, w.Data.Settings.HMAC.SecretSet)
	}
	if got := v.settingsOf("github.push").HMAC.Secret; string(got) != secret {
		t.Errorf("stored secret differs from the one returned")
	}

	// Never again: not by GET (either spelling), nor by later PATCHes.
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/triggers/github.push/webhooks", ""},
		{http.MethodGet, "/api/v1/triggers/github.push/webhook", ""},
		{http.MethodGet, "/api/v1/triggers/github.push", ""},
		{http.MethodGet, "/api/v1/triggers", ""},
		{http.MethodPatch, "/api/v1/triggers/github.push/webhooks", `{"hmac":{"enabled":true}}`},
		{http.MethodPatch, "/api/v1/triggers/github.push/webhooks", `{"rate_limit":{"requests":5}}`},
	} {
		raw := string(v.call(tc.method, tc.path, tc.body, http.StatusOK, nil))
		if strings.Contains(raw, secret) || strings.Contains(raw, `"secret":`) {
			t.Errorf("%s %s %s shows the secret: %s", tc.method, tc.path, tc.body, raw)
		}
		if strings.HasSuffix(tc.path, "webhooks") && !strings.Contains(raw, `"secret_set":true`) {
			t.Errorf("%s %s: secret_set is not true: %s", tc.method, tc.path, raw)
		}
	}
	if got := v.settingsOf("github.push").HMAC.Secret; string(got) != secret {
		t.Errorf("a later PATCH replaced the generated secret")
	}
	if strings.Contains(v.logs.String(), secret) {
		t.Error("the logs carry the secret")
	}

	// Clearing the secret while HMAC stays enabled generates a new one,
	// shown once, and the old one rotates out.
	v.call(http.MethodPatch, "/api/v1/triggers/github.push/webhooks", `{"hmac":{"secret":""}}`, http.StatusOK, &w)
	if s2 := w.Data.Settings.HMAC.Secret; s2 == "" || s2 == secret {
		t.Errorf("clearing the secret: got %q, want a new generated secret", s2)
	}
	if w.Data.Settings.HMAC.PreviousSecretExpiresAt == nil {
		t.Error("clearing the secret: the old one is not kept for the rotation grace")
	}
}

func TestSecretRotation(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("github.push")
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	v.api.now = func() time.Time { return now }
	patch := func(body string) Webhook {
		t.Helper()
		var w struct{ Data Webhook }
		v.call(http.MethodPatch, "/api/v1/triggers/github.push/webhooks", body, http.StatusOK, &w)
		return w.Data
	}

	w := patch(`{"hmac":{"enabled":true,"secret":"s1"}}`)
	if w.Settings.HMAC.PreviousSecretExpiresAt != nil || w.Settings.HMAC.Secret != "" {
		t.Errorf("first secret: %+v", w.Settings.HMAC)
	}

	// Default grace: 24 hours.
	w = patch(`{"hmac":{"secret":"s2"}}`)
	wantExp := now.Add(trigger.DefaultRotationGrace)
	if exp := w.Settings.HMAC.PreviousSecretExpiresAt; exp == nil || !exp.Equal(wantExp) {
		t.Errorf("previous_secret_expires_at = %v, want %v", exp, wantExp)
	}
	h := v.settingsOf("github.push").HMAC
	if h.Secret != "s2" || h.PreviousSecret != "s1" || h.PreviousSecretExpiresAt == nil || !h.PreviousSecretExpiresAt.Equal(wantExp) {
		t.Errorf("stored: secret %q previous %q until %v", string(h.Secret), string(h.PreviousSecret), h.PreviousSecretExpiresAt)
	}
	if got := h.Secrets(now.Add(time.Hour)); len(got) != 2 {
		t.Errorf("secrets during the grace = %d, want 2", len(got))
	}

	// The same secret again rotates nothing.
	patch(`{"hmac":{"secret":"s2"}}`)
	if h := v.settingsOf("github.push").HMAC; h.PreviousSecret != "s1" {
		t.Errorf("re-sending the current secret rotated it: previous %q", string(h.PreviousSecret))
	}

	// An explicit grace replaces the previous secret.
	w = patch(`{"hmac":{"secret":"s3","rotation_grace_seconds":60}}`)
	if exp := w.Settings.HMAC.PreviousSecretExpiresAt; exp == nil || !exp.Equal(now.Add(time.Minute)) {
		t.Errorf("previous_secret_expires_at = %v, want %v", exp, now.Add(time.Minute))
	}
	if h := v.settingsOf("github.push").HMAC; h.PreviousSecret != "s2" {
		t.Errorf("previous = %q, want s2", string(h.PreviousSecret))
	}

	// Once expired, GET no longer shows it.
	now = now.Add(2 * time.Minute)
	var g struct{ Data Webhook }
	v.call(http.MethodGet, "/api/v1/triggers/github.push/webhooks", "", http.StatusOK, &g)
	if g.Data.Settings.HMAC.PreviousSecretExpiresAt != nil {
		t.Errorf("expired previous secret still shown: %v", g.Data.Settings.HMAC.PreviousSecretExpiresAt)
	}

	// Grace 0: the old secret stops at once.
	w = patch(`{"hmac":{"secret":"s4","rotation_grace_seconds":0}}`)
	h = v.settingsOf("github.push").HMAC
	if w.Settings.HMAC.PreviousSecretExpiresAt != nil || h.PreviousSecret != "" || h.PreviousSecretExpiresAt != nil {
		t.Errorf("grace 0: previous %q until %v", string(h.PreviousSecret), h.PreviousSecretExpiresAt)
	}
	for _, s := range []string{"s1", "s2", "s3", "s4"} {
		if strings.Contains(v.logs.String(), `"`+s+`"`) {
			t.Errorf("logs carry secret %s", s)
		}
	}
}

func TestSingularSpelling(t *testing.T) {
	v := newEnv(t)
	tr := v.createTrigger("github.push")
	var en stateResp
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhook/enable", "", http.StatusOK, &en)
	if !en.Data.WebhookEnabled {
		t.Fatal("enable via /webhook did not enable")
	}
	plural := v.call(http.MethodGet, "/api/v1/triggers/github.push/webhooks", "", http.StatusOK, nil)
	singular := v.call(http.MethodGet, "/api/v1/triggers/github.push/webhook", "", http.StatusOK, nil)
	if string(plural) != string(singular) {
		t.Errorf("GET /webhook = %s, want the same as /webhooks %s", singular, plural)
	}
	var rg regenResp
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhook/regenerate", `{"grace_seconds":10}`, http.StatusOK, &rg)
	if rg.Data.PreviousKeyRevoked {
		t.Error("regenerate via /webhook ignored the grace")
	}
	v.seedAudit(tr, time.Now().Add(-time.Hour), 3, []string{outcome.Accepted})
	var lg struct{ Data []store.Audit }
	v.call(http.MethodGet, "/api/v1/triggers/github.push/webhook/log", "", http.StatusOK, &lg)
	if len(lg.Data) != 3 {
		t.Errorf("log via /webhook: %d records, want 3", len(lg.Data))
	}
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhook/disable", "", http.StatusOK, &en)
	if en.Data.WebhookEnabled {
		t.Error("disable via /webhook did not disable")
	}
}

func TestWebhookLogPagination(t *testing.T) {
	v := newEnv(t)
	tr := v.createTrigger("github.push")
	other := v.createTrigger("github.issues")
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	outcomes := []string{outcome.Accepted, outcome.RateLimited, outcome.BadSignature}
	v.seedAudit(tr, start, 25, outcomes)
	v.seedAudit(other, start, 5, outcomes)

	walk := func(query string) []store.Audit {
		t.Helper()
		var all []store.Audit
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 30 {
				t.Fatal("pagination does not end")
			}
			var page struct {
				Data       []store.Audit `json:"data"`
				NextCursor *string       `json:"next_cursor"`
			}
			v.call(http.MethodGet, "/api/v1/triggers/github.push/webhooks/log?"+query+"&cursor="+cursor, "", http.StatusOK, &page)
			all = append(all, page.Data...)
			if page.NextCursor == nil {
				return all
			}
			cursor = *page.NextCursor
		}
	}

	all := walk("limit=10")
	if len(all) != 25 {
		t.Fatalf("walked %d records, want 25", len(all))
	}
	seen := map[int64]bool{}
	for i, a := range all {
		if seen[a.ID] {
			t.Errorf("record %d seen twice", a.ID)
		}
		seen[a.ID] = true
		if a.TriggerRef == nil || *a.TriggerRef != "github.push" {
			t.Errorf("record of another trigger: %v", a.TriggerRef)
		}
		if i > 0 && !all[i-1].ReceivedAt.After(a.ReceivedAt) {
			t.Errorf("records not newest first at %d: %v then %v", i, all[i-1].ReceivedAt, a.ReceivedAt)
		}
	}

	limited := walk("limit=9&outcome=rate_limited")
	if len(limited) != 8 {
		t.Errorf("rate_limited records = %d, want 8", len(limited))
	}
	for _, a := range limited {
		if a.Outcome != outcome.RateLimited {
			t.Errorf("outcome filter let %q through", a.Outcome)
		}
	}

	// Default limit: 50.
	var page struct {
		Data       []json.RawMessage `json:"data"`
		NextCursor *string           `json:"next_cursor"`
	}
	raw := v.call(http.MethodGet, "/api/v1/triggers/github.push/webhooks/log", "", http.StatusOK, &page)
	if len(page.Data) != 25 || page.NextCursor != nil || !strings.Contains(string(raw), `"next_cursor":null`) {
		t.Errorf("default page: %d records, next %v", len(page.Data), page.NextCursor)
	}
	var rec map[string]any
	if err := json.Unmarshal(page.Data[0], &rec); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range rec {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"body_size", "count", "detail", "duration_ms", "event_id", "id", "key_label", "key_prefix", "outcome", "received_at", "source_ip", "status", "trigger_ref", "user_agent"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("audit record members = %v, want %v", keys, want)
	}

	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "limit=-1", "outcome=nope", "cursor=***", "cursor=" + store.Cursor{At: start, ID: "abc"}.String()} {
		rec := v.do(http.MethodGet, "/api/v1/triggers/github.push/webhooks/log?"+q, "")
		if rec.Code != http.StatusBadRequest {
			t.Errorf("log?%s = %d %s, want 400", q, rec.Code, rec.Body)
		}
	}
	v.call(http.MethodGet, "/api/v1/triggers/github.push/webhooks/log?limit=1000", "", http.StatusOK, nil)
	v.call(http.MethodGet, "/api/v1/triggers/no.such/webhooks/log", "", http.StatusNotFound, nil)

	// The stats count every outcome, zeros included.
	var w struct{ Data Webhook }
	v.call(http.MethodGet, "/api/v1/triggers/github.push/webhooks", "", http.StatusOK, &w)
	if len(w.Data.Stats.Requests) != len(outcome.All) {
		t.Errorf("stats has %d outcomes, want %d", len(w.Data.Stats.Requests), len(outcome.All))
	}
	// 25 records cycling through three outcomes: 9, 8 and 8.
	counts := map[string]int64{outcome.Accepted: 9, outcome.RateLimited: 8, outcome.BadSignature: 8}
	for _, o := range outcome.All {
		n, ok := w.Data.Stats.Requests[o]
		if wantN := counts[o]; !ok || n != wantN {
			t.Errorf("stats[%s] = %d (present %v), want %d", o, n, ok, counts[o])
		}
	}
	if w.Data.LastUsedAt == nil || !w.Data.LastUsedAt.Equal(start.Add(24*time.Second)) {
		t.Errorf("last_used_at = %v, want %v", w.Data.LastUsedAt, start.Add(24*time.Second))
	}
	if w.Data.TotalEvents != 0 {
		t.Errorf("total_events = %d, want 0", w.Data.TotalEvents)
	}
}

// A PATCH that does not touch hmac never generates a secret, even for a
// trigger whose HMAC is on without one (as a pack may leave it).
func TestPatchOutsideHMACGeneratesNoSecret(t *testing.T) {
	v := newEnv(t)
	tr := v.createTrigger("github.push")
	if _, err := v.store.UpdateSettings(context.Background(), tr.ID, func(s *trigger.Settings) error {
		s.HMAC.Enabled, s.HMAC.Preset = true, "github"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	raw := v.call(http.MethodPatch, "/api/v1/triggers/github.push/webhooks", `{"rate_limit":{"requests":5}}`, http.StatusOK, nil)
	if strings.Contains(string(raw), `"secret":`) || v.settingsOf("github.push").HMAC.Secret != "" {
		t.Errorf("a rate limit change generated a secret: %s", raw)
	}
	raw = v.call(http.MethodPatch, "/api/v1/triggers/github.push/webhooks", `{"hmac":{"enabled":true}}`, http.StatusOK, nil)
	if !strings.Contains(string(raw), `"secret":`) || v.settingsOf("github.push").HMAC.Secret == "" {
		t.Errorf("turning hmac on without a secret generated none: %s", raw)
	}
}
