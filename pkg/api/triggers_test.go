package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/problem"
)

func TestCreateTrigger(t *testing.T) {
	v := newEnv(t)

	var got struct{ Data Trigger }
	raw := v.call(http.MethodPost, "/api/v1/triggers",
		`{"ref":"custom.deploy","description":"Deploys","payload_schema":{"type":"object","required":["env"]}}`,
		http.StatusCreated, &got)
	d := got.Data
	if d.ID == 0 || d.Ref != "custom.deploy" || d.Pack != "custom" || d.Name != "deploy" || d.Description != "Deploys" ||
		d.WebhookEnabled || d.WebhookKey != nil || d.WebhookURL != nil || d.CreatedAt.IsZero() || d.UpdatedAt.IsZero() {
		t.Errorf("created = %+v", d)
	}
	var schema map[string]any
	if err := json.Unmarshal(d.PayloadSchema, &schema); err != nil || schema["type"] != "object" {
		t.Errorf("payload_schema = %s", d.PayloadSchema)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &struct{ Data *map[string]json.RawMessage }{&members}); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range members {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"created_at", "description", "id", "name", "pack", "payload_schema", "ref", "updated_at", "webhook_enabled", "webhook_key", "webhook_url"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("trigger members = %v, want %v", keys, want)
	}

	// Taken ref.
	rec := v.do(http.MethodPost, "/api/v1/triggers", `{"ref":"custom.deploy"}`)
	if rec.Code != http.StatusConflict || decodeProblem(t, rec).Code != problem.Conflict {
		t.Errorf("duplicate ref = %d %s, want 409 conflict", rec.Code, rec.Body)
	}

	// Enabled with HMAC and no secret: key and a secret shown once.
	v.call(http.MethodPost, "/api/v1/triggers",
		`{"ref":"custom.build","webhook":{"enabled":true,"hmac":{"enabled":true},"rate_limit":{"requests":5}}}`,
		http.StatusCreated, &got)
	d = got.Data
	if !d.WebhookEnabled || d.WebhookKey == nil || !keyRe.MatchString(*d.WebhookKey) || *d.WebhookURL != publicURL+"/api/v1/webhooks/"+*d.WebhookKey {
		t.Errorf("enabled creation = %+v", d)
	}
	if !regexp.MustCompile(`^whsec_[A-Za-z0-9]{40}$`).MatchString(d.HMACSecret) {
		t.Errorf("hmac_secret = %q, want a generated secret", d.HMACSecret)
	}
	s := v.settingsOf("custom.build")
	if string(s.HMAC.Secret) != d.HMACSecret || !s.HMAC.Enabled || s.RateLimit.Requests != 5 {
		t.Errorf("stored settings = %+v", s)
	}
	for _, path := range []string{"/api/v1/triggers/custom.build", "/api/v1/triggers/custom.build/webhooks", "/api/v1/triggers"} {
		if body := v.call(http.MethodGet, path, "", http.StatusOK, nil); strings.Contains(string(body), d.HMACSecret) {
			t.Errorf("GET %s shows the secret", path)
		}
	}

	// A secret the client chose is never echoed.
	raw = v.call(http.MethodPost, "/api/v1/triggers", `{"ref":"custom.ship","webhook":{"hmac":{"enabled":true,"secret":"mine-mine"}}}`, http.StatusCreated, nil)
	if strings.Contains(string(raw), "mine-mine") || strings.Contains(string(raw), "hmac_secret") {
		t.Errorf("creation echoes the client's secret: %s", raw)
	}
	if strings.Contains(v.logs.String(), d.HMACSecret) || strings.Contains(v.logs.String(), "mine-mine") {
		t.Error("logs carry a secret")
	}
}

func TestCreateTriggerRejects(t *testing.T) {
	v := newEnv(t)
	tests := []struct {
		name, body string
		fields     []string
	}{
		{"missing ref", `{"description":"x"}`, []string{"ref"}},
		{"ref without pack", `{"ref":"deploy"}`, []string{"ref"}},
		{"ref with a slash", `{"ref":"a.b/c"}`, []string{"ref"}},
		{"ref with a wildcard", `{"ref":"a.*"}`, []string{"ref"}},
		{"schema not an object", `{"ref":"a.b","payload_schema":[1]}`, []string{"payload_schema"}},
		{"schema does not compile", `{"ref":"a.b","payload_schema":{"type":5}}`, []string{"payload_schema"}},
		{"unknown field", `{"ref":"a.b","owner":"me"}`, []string{"owner"}},
		{"unknown webhook field", `{"ref":"a.b","webhook":{"enabled":true,"hmac":{"rotation":5}}}`, []string{"webhook.hmac.rotation"}},
		{"wrong type", `{"ref":"a.b","webhook":{"hmac":{"enabled":1}}}`, []string{"webhook.hmac.enabled"}},
		{"webhook not an object", `{"ref":"a.b","webhook":true}`, []string{"webhook"}},
		{"mapping not an object", `{"ref":"a.b","webhook":{"payload_mapping":"$.a"}}`, []string{"webhook.payload_mapping"}},
		{"invalid settings", `{"ref":"a.b","webhook":{"hmac":{"algorithm":"md5"},"ip_allowlist":{"cidrs":["x"]}}}`,
			[]string{"webhook.hmac.algorithm", "webhook.ip_allowlist.cidrs[0]"}},
		{"everything wrong", `{"ref":"nope","payload_schema":"x","webhook":{"payload_size_limit_kb":0}}`,
			[]string{"ref", "payload_schema", "webhook.payload_size_limit_kb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := v.do(http.MethodPost, "/api/v1/triggers", tt.body)
			if rec.Code != http.StatusUnprocessableEntity {
				t.Fatalf("POST %s = %d %s, want 422", tt.body, rec.Code, rec.Body)
			}
			var fields []string
			for _, e := range decodeProblem(t, rec).Errors {
				fields = append(fields, e.Field)
			}
			if !reflect.DeepEqual(fields, tt.fields) {
				t.Errorf("fields = %v, want %v (%s)", fields, tt.fields, rec.Body)
			}
		})
	}
	for _, body := range []string{``, `{`, `[]`} {
		if rec := v.do(http.MethodPost, "/api/v1/triggers", body); rec.Code != http.StatusBadRequest {
			t.Errorf("POST %q = %d, want 400", body, rec.Code)
		}
	}
	var list struct{ Data []Trigger }
	v.call(http.MethodGet, "/api/v1/triggers", "", http.StatusOK, &list)
	if len(list.Data) != 0 {
		t.Errorf("refused creations created %d triggers", len(list.Data))
	}
}

func TestListTriggers(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("b.two")
	v.createTrigger("a.one")
	v.call(http.MethodPost, "/api/v1/triggers/b.two/webhooks/enable", "", http.StatusOK, nil)
	var list struct {
		Data       []Trigger `json:"data"`
		NextCursor *string   `json:"next_cursor"`
	}
	raw := v.call(http.MethodGet, "/api/v1/triggers", "", http.StatusOK, &list)
	if len(list.Data) != 2 || list.Data[0].Ref != "a.one" || list.Data[1].Ref != "b.two" {
		t.Fatalf("list = %s", raw)
	}
	if list.Data[0].WebhookEnabled || !list.Data[1].WebhookEnabled || list.Data[1].WebhookURL == nil {
		t.Errorf("webhook status in list: %s", raw)
	}
	if !strings.Contains(string(raw), `"next_cursor":null`) || !strings.Contains(string(raw), `"payload_schema":null`) {
		t.Errorf("list lacks next_cursor or payload_schema null: %s", raw)
	}
}

func TestDeleteTrigger(t *testing.T) {
	v := newEnv(t)
	tr := v.createTrigger("github.push")
	keep := v.createTrigger("github.issues")
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/enable", "", http.StatusOK, nil)
	ids := v.seedEvents(tr, time.Now().Add(-time.Minute), `{"n":1}`, `{"n":2}`)

	rec := v.do(http.MethodDelete, "/api/v1/triggers/github.push", "")
	if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
		t.Fatalf("DELETE = %d %q, want 204 and no body", rec.Code, rec.Body)
	}
	v.call(http.MethodGet, "/api/v1/triggers/github.push", "", http.StatusNotFound, nil)
	v.call(http.MethodDelete, "/api/v1/triggers/github.push", "", http.StatusNotFound, nil)
	var keys int
	if err := v.store.DB().Get(&keys, `SELECT count(*) FROM webhook_keys WHERE trigger_id = $1`, tr.ID); err != nil || keys != 0 {
		t.Errorf("keys of the deleted trigger: %d (%v)", keys, err)
	}

	// Its events stay.
	for _, id := range ids {
		v.call(http.MethodGet, "/api/v1/events/"+id, "", http.StatusOK, nil)
	}
	var list struct{ Data []json.RawMessage }
	v.call(http.MethodGet, "/api/v1/events?trigger=github.push", "", http.StatusOK, &list)
	if len(list.Data) != 2 {
		t.Errorf("events of the deleted trigger: %d, want 2", len(list.Data))
	}

	// By numeric id.
	v.call(http.MethodDelete, fmt.Sprintf("/api/v1/triggers/%d", keep.ID), "", http.StatusNoContent, nil)
	if _, err := v.store.GetTrigger(context.Background(), "github.issues"); err == nil {
		t.Error("trigger deleted by id still exists")
	}
}
