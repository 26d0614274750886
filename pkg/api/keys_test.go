package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

type keysResp struct {
	Data []Key `json:"data"`
}

type keyResp struct {
	Data Key `json:"data"`
}

// TestKeys: extra keys with labels, each its own URL, listed, created and
// revoked; the primary key is only replaced by regenerate; at most ten live
// keys; every change is in the activity log with the token that made it.
func TestKeys(t *testing.T) {
	v := newEnv(t)
	tr := v.createTrigger("github.push")
	ctx := context.Background()
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/enable", "", http.StatusOK, nil)

	var ks keysResp
	v.call(http.MethodGet, "/api/v1/triggers/github.push/webhooks/keys", "", http.StatusOK, &ks)
	if len(ks.Data) != 1 || !ks.Data[0].Primary || ks.Data[0].Label != "primary" || !keyRe.MatchString(ks.Data[0].Key) ||
		ks.Data[0].URL != publicURL+"/api/v1/webhooks/"+ks.Data[0].Key || ks.Data[0].ExpiresAt != nil {
		t.Fatalf("keys of a new webhook = %+v, want the primary key", ks.Data)
	}
	primary := ks.Data[0]

	var ci, staging keyResp
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/keys", `{"label":"ci"}`, http.StatusCreated, &ci)
	before := time.Now()
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhook/keys", `{"label":"staging","expires_in_seconds":3600}`, http.StatusCreated, &staging)
	if ci.Data.Primary || ci.Data.Label != "ci" || !keyRe.MatchString(ci.Data.Key) || ci.Data.Key == primary.Key {
		t.Errorf("created key = %+v", ci.Data)
	}
	if e := staging.Data.ExpiresAt; e == nil || e.Before(before.Add(3599*time.Second)) || e.After(time.Now().Add(3601*time.Second)) {
		t.Errorf("expiring key's expires_at = %v, want about an hour from now", e)
	}
	for _, k := range []Key{primary, ci.Data, staging.Data} {
		w, err := v.store.LookupKey(ctx, k.Key)
		if err != nil || w.Trigger.ID != tr.ID || w.KeyLabel != k.Label {
			t.Errorf("lookup of key %s: %+v, %v", k.Label, w, err)
		}
	}
	v.call(http.MethodGet, "/api/v1/triggers/github.push/webhooks/keys", "", http.StatusOK, &ks)
	if len(ks.Data) != 3 || ks.Data[0].Key != primary.Key {
		t.Errorf("keys = %+v, want the primary first and two extra keys", ks.Data)
	}

	for _, tt := range []struct{ name, body, field string }{
		{"empty label", `{"label":" "}`, "label"},
		{"repeated label", `{"label":"ci"}`, "label"},
		{"primary's label", `{"label":"primary"}`, "label"},
		{"long label", `{"label":"` + strings.Repeat("x", 65) + `"}`, "label"},
		{"bad expiry", `{"label":"x","expires_in_seconds":0}`, "expires_in_seconds"},
		{"unknown field", `{"label":"x","key":"wh_mine"}`, "key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := v.do(http.MethodPost, "/api/v1/triggers/github.push/webhooks/keys", tt.body)
			if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `"field":"`+tt.field+`"`) {
				t.Errorf("POST keys %s = %d %s, want 422 naming %s", tt.body, rec.Code, rec.Body, tt.field)
			}
		})
	}
	for i := 3; i < trigger.MaxLiveKeys; i++ {
		v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/keys", fmt.Sprintf(`{"label":"k%d"}`, i), http.StatusCreated, nil)
	}
	if rec := v.do(http.MethodPost, "/api/v1/triggers/github.push/webhooks/keys", `{"label":"one too many"}`); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("an eleventh live key = %d %s, want 422", rec.Code, rec.Body)
	}
	// A regenerate needs no room: it replaces the primary key.
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/regenerate", "", http.StatusOK, nil)

	if rec := v.do(http.MethodDelete, fmt.Sprintf("/api/v1/triggers/github.push/webhooks/keys/%d", ks.Data[0].ID), ""); rec.Code != http.StatusNotFound {
		t.Errorf("revoking the replaced primary key = %d, want 404 (it is gone)", rec.Code)
	}
	v.call(http.MethodGet, "/api/v1/triggers/github.push/webhooks/keys", "", http.StatusOK, &ks)
	if rec := v.do(http.MethodDelete, fmt.Sprintf("/api/v1/triggers/github.push/webhooks/keys/%d", ks.Data[0].ID), ""); rec.Code != http.StatusConflict {
		t.Errorf("revoking the primary key = %d %s, want 409", rec.Code, rec.Body)
	}
	v.call(http.MethodDelete, fmt.Sprintf("/api/v1/triggers/github.push/webhooks/keys/%d", ci.Data.ID), "", http.StatusNoContent, nil)
	if _, err := v.store.LookupKey(ctx, ci.Data.Key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoked key: err = %v, want ErrNotFound", err)
	}
	if rec := v.do(http.MethodDelete, fmt.Sprintf("/api/v1/triggers/github.push/webhooks/keys/%d", ci.Data.ID), ""); rec.Code != http.StatusNotFound {
		t.Errorf("revoking twice = %d, want 404", rec.Code)
	}
	other := v.createTrigger("github.issues")
	_ = other
	if rec := v.do(http.MethodDelete, fmt.Sprintf("/api/v1/triggers/github.issues/webhooks/keys/%d", staging.Data.ID), ""); rec.Code != http.StatusNotFound {
		t.Errorf("revoking another trigger's key = %d, want 404", rec.Code)
	}

	var act struct {
		Data []store.Activity `json:"data"`
	}
	v.call(http.MethodGet, "/api/v1/activity?limit=100", "", http.StatusOK, &act)
	var actions []string
	for _, a := range act.Data {
		if a.TokenName != "test" || a.TokenID == nil {
			t.Errorf("activity %+v is not the test token's", a)
		}
		actions = append(actions, a.Action+" "+a.Target)
	}
	for _, want := range []string{"webhook.enable github.push", "key.create github.push key ci", "key.create github.push key staging",
		"key.regenerate github.push", "key.revoke github.push key ci"} {
		if !strings.Contains(strings.Join(actions, "\n"), want) {
			t.Errorf("activity lacks %q: %v", want, actions)
		}
	}
	for _, k := range []string{primary.Key, ci.Data.Key, staging.Data.Key} {
		if strings.Contains(v.logs.String(), k) {
			t.Errorf("the log shows key %s", k[:8])
		}
	}
}

// TestActivityNamesFieldsNotValues: a settings change records the names of
// the fields it changed, never their values.
func TestActivityNamesFieldsNotValues(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("github.push")
	v.call(http.MethodPatch, "/api/v1/triggers/github.push/webhooks",
		`{"hmac":{"enabled":true,"secret":"the-very-secret-value"},"rate_limit":{"requests":5}}`, http.StatusOK, nil)
	raw := v.call(http.MethodGet, "/api/v1/activity", "", http.StatusOK, nil)
	if strings.Contains(string(raw), "the-very-secret-value") {
		t.Fatalf("the activity log shows a secret: %s", raw)
	}
	var act struct {
		Data []store.Activity `json:"data"`
	}
	v.call(http.MethodGet, "/api/v1/activity", "", http.StatusOK, &act)
	if len(act.Data) != 1 || act.Data[0].Action != "settings.update" || act.Data[0].Target != "github.push" {
		t.Fatalf("activity = %+v, want one settings.update of github.push", act.Data)
	}
	got := strings.Join(act.Data[0].Changes, ",")
	if got != "hmac.enabled,hmac.secret,rate_limit.requests" {
		t.Errorf("changes = %s, want hmac.enabled,hmac.secret,rate_limit.requests", got)
	}
}

// A primary key replaced with a grace period is listed, and named in audit
// records, as "primary (replaced)" until it stops working.
func TestReplacedKeyLabel(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("github.push")
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/enable", "", http.StatusOK, nil)
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/regenerate", `{"grace_seconds":3600}`, http.StatusOK, nil)
	var ks keysResp
	v.call(http.MethodGet, "/api/v1/triggers/github.push/webhooks/keys", "", http.StatusOK, &ks)
	var labels []string
	for _, k := range ks.Data {
		labels = append(labels, fmt.Sprintf("%s/%v", k.Label, k.Primary))
	}
	if strings.Join(labels, ",") != "primary/true,primary (replaced)/false" {
		t.Errorf("keys after a regenerate with grace = %v", labels)
	}
	// Another regenerate with grace replaces the new primary in turn.
	v.call(http.MethodPost, "/api/v1/triggers/github.push/webhooks/regenerate", `{"grace_seconds":3600}`, http.StatusOK, nil)
	v.call(http.MethodGet, "/api/v1/triggers/github.push/webhooks/keys", "", http.StatusOK, &ks)
	if len(ks.Data) != 3 || ks.Data[1].Label != "primary (replaced)" || ks.Data[2].Label != "primary (replaced)" {
		t.Errorf("keys after two regenerates = %+v", ks.Data)
	}
}
