package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/forward"
	"github.com/inlet-dev/inlet/pkg/netguard"
	"github.com/inlet-dev/inlet/pkg/store"
)

type destResp struct {
	Data Destination `json:"data"`
}

type deliveriesResp struct {
	Data       []store.Delivery `json:"data"`
	NextCursor *string          `json:"next_cursor"`
}

const headerValue = "Bearer the-header-value-never-shown"

func (v *env) createDestination(ref, body string) Destination {
	v.t.Helper()
	var d destResp
	v.call(http.MethodPost, "/api/v1/triggers/"+ref+"/destinations", body, http.StatusCreated, &d)
	return d.Data
}

// TestDestinationLifecycle: create with a generated secret shown once,
// read, list, change, rotate, delete; header values and secrets appear in
// no answer, log or activity record.
func TestDestinationLifecycle(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("github.push")
	created := v.createDestination("github.push",
		`{"name":"ci","url":"https://ci.example.com/hook","headers":{"authorization":"`+headerValue+`","X-Team":"builds"}}`)
	if !strings.HasPrefix(created.ID, "dst_") || len(created.ID) != 30 || created.TriggerRef != "github.push" || !created.Enabled {
		t.Errorf("created = %+v", created)
	}
	if created.Secret == nil || !strings.HasPrefix(*created.Secret, "whsec_") || !created.Signing.SecretSet ||
		created.Signing.Scheme != "standard-webhooks" {
		t.Fatalf("created signing = %+v, secret %v; want a generated whsec_ secret", created.Signing, created.Secret)
	}
	secret := *created.Secret
	if created.TimeoutSeconds != 10 || created.MaxInFlight != 10 || len(created.RetryScheduleSeconds) != 8 || created.Circuit.State != "closed" {
		t.Errorf("defaults = %+v", created)
	}
	if !slices.Equal(created.Headers, []string{"Authorization", "X-Team"}) {
		t.Errorf("headers = %v, want the canonical names only", created.Headers)
	}

	var got destResp
	raw := v.call(http.MethodGet, "/api/v1/destinations/"+created.ID, "", http.StatusOK, &got)
	if got.Data.Secret != nil || strings.Contains(string(raw), secret) {
		t.Error("GET shows the secret")
	}
	if got.Data.Stats == nil || got.Data.Stats.Pending != 0 {
		t.Errorf("stats = %+v", got.Data.Stats)
	}
	var list struct {
		Data []Destination `json:"data"`
	}
	v.call(http.MethodGet, "/api/v1/triggers/github.push/destinations", "", http.StatusOK, &list)
	if len(list.Data) != 1 || list.Data[0].ID != created.ID || list.Data[0].Stats != nil {
		t.Errorf("list = %+v", list.Data)
	}

	// PATCH: headers merge, a null removes one; other fields change.
	var patched destResp
	v.call(http.MethodPatch, "/api/v1/destinations/"+created.ID,
		`{"name":"ci-2","timeout_seconds":5,"retry_schedule_seconds":[10,20],"headers":{"X-Team":null,"X-Env":"prod"}}`, http.StatusOK, &patched)
	p := patched.Data
	if p.Name != "ci-2" || p.TimeoutSeconds != 5 || !slices.Equal(p.RetryScheduleSeconds, []int{10, 20}) ||
		!slices.Equal(p.Headers, []string{"Authorization", "X-Env"}) {
		t.Errorf("patched = %+v", p)
	}
	// The scheme cannot change.
	rec := v.do(http.MethodPatch, "/api/v1/destinations/"+created.ID, `{"signing":{"scheme":"hmac-sha256"}}`)
	if pb := decodeProblem(t, rec); rec.Code != http.StatusUnprocessableEntity || len(pb.Errors) != 1 || pb.Errors[0].Field != "signing.scheme" {
		t.Errorf("changing the scheme = %d %+v", rec.Code, pb)
	}

	// Rotate: a new secret, the old one signing for a day.
	var rot struct {
		Data rotatedSecret `json:"data"`
	}
	before := time.Now()
	v.call(http.MethodPost, "/api/v1/destinations/"+created.ID+"/rotate-secret", "", http.StatusOK, &rot)
	if rot.Data.Secret == secret || !strings.HasPrefix(rot.Data.Secret, "whsec_") {
		t.Errorf("rotated secret = %q", rot.Data.Secret)
	}
	if e := rot.Data.PreviousSecretExpiresAt; e == nil || e.Before(before.Add(86399*time.Second)) || e.After(time.Now().Add(86401*time.Second)) {
		t.Errorf("previous secret expires at %v, want in a day", e)
	}
	d, err := v.store.GetDestination(context.Background(), created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Secret) != rot.Data.Secret || string(d.PreviousSecret) != secret || len(d.Secrets(time.Now())) != 2 {
		t.Error("the stored secrets are not the new and the old")
	}
	v.call(http.MethodGet, "/api/v1/destinations/"+created.ID, "", http.StatusOK, &got)
	if got.Data.Signing.PreviousSecretExpiresAt == nil {
		t.Error("GET does not show the grace period")
	}
	v.call(http.MethodPost, "/api/v1/destinations/"+created.ID+"/rotate-secret", `{"grace_seconds":0}`, http.StatusOK, &rot)
	if rot.Data.PreviousSecretExpiresAt != nil {
		t.Errorf("rotation without grace keeps the old secret until %v", rot.Data.PreviousSecretExpiresAt)
	}
	if rec := v.do(http.MethodPost, "/api/v1/destinations/"+created.ID+"/rotate-secret", `{"grace_seconds":-1}`); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("negative grace = %d", rec.Code)
	}

	// The activity log names fields, never values.
	actRaw := v.call(http.MethodGet, "/api/v1/activity?limit=100", "", http.StatusOK, nil)
	var act struct {
		Data []store.Activity `json:"data"`
	}
	_ = json.Unmarshal(actRaw, &act)
	var actions []string
	for _, a := range act.Data {
		actions = append(actions, a.Action+" "+strings.Join(a.Changes, ","))
	}
	for _, want := range []string{"destination.create ", "destination.update name,timeout_seconds,retry_schedule_seconds,headers.X-Env,headers.X-Team",
		"destination.rotate_secret signing.secret"} {
		if !slices.Contains(actions, want) {
			t.Errorf("activity lacks %q: %q", want, actions)
		}
	}

	if rec := v.do(http.MethodDelete, "/api/v1/destinations/"+created.ID, ""); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE = %d", rec.Code)
	}
	if rec := v.do(http.MethodGet, "/api/v1/destinations/"+created.ID, ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET after DELETE = %d", rec.Code)
	}
	for _, path := range []string{"/api/v1/destinations/nope", "/api/v1/destinations/dst_00000000000000000000000000"} {
		if rec := v.do(http.MethodGet, path, ""); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, rec.Code)
		}
	}

	// Nothing secret anywhere.
	for _, s := range []string{headerValue, "the-header-value", secret, rot.Data.Secret} {
		if strings.Contains(v.logs.String(), s) || strings.Contains(string(actRaw), s) {
			t.Errorf("a log line or the activity log holds a secret")
		}
	}
	if strings.Contains(string(raw), "the-header-value") {
		t.Error("GET shows a header value")
	}
}

func TestDestinationValidation(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("github.push")
	rec := v.do(http.MethodPost, "/api/v1/triggers/github.push/destinations", `{
		"name": "",
		"url": "ftp://x.example.com/",
		"signing": {"scheme": "hmac-md5"},
		"headers": {"Content-Type": "text/plain", "X-Ok": "fine"},
		"timeout_seconds": 0,
		"retry_schedule_seconds": [60, 100000],
		"max_in_flight": 101
	}`)
	if rec.Code != http.StatusUnprocessableEntity {
		t.Fatalf("invalid destination = %d %s", rec.Code, rec.Body)
	}
	pb := decodeProblem(t, rec)
	var fields []string
	for _, e := range pb.Errors {
		fields = append(fields, e.Field)
	}
	slices.Sort(fields)
	want := []string{"headers.Content-Type", "max_in_flight", "name", "retry_schedule_seconds[1]", "signing.scheme", "timeout_seconds", "url"}
	if !slices.Equal(fields, want) {
		t.Errorf("invalid fields = %v, want %v", fields, want)
	}
	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"name":"x","url":"https://a.example.com","colour":"red"}`, http.StatusUnprocessableEntity},
		{`{"name":"x","url":"https://a.example.com","timeout_seconds":"10"}`, http.StatusUnprocessableEntity},
		{`{"name":"x","url":"https://a.example.com","signing":{"scheme":"none","secret":"abc"}}`, http.StatusUnprocessableEntity},
		{`{"name":"x","url":"https://a.example.com","signing":{"scheme":"hmac-sha256","secret":"short"}}`, http.StatusUnprocessableEntity},
		{`[1]`, http.StatusBadRequest},
		{`{`, http.StatusBadRequest},
		{``, http.StatusBadRequest},
	} {
		if rec := v.do(http.MethodPost, "/api/v1/triggers/github.push/destinations", tc.body); rec.Code != tc.code {
			t.Errorf("POST %s = %d, want %d", tc.body, rec.Code, tc.code)
		}
	}
	if rec := v.do(http.MethodPost, "/api/v1/triggers/nope.nope/destinations", `{"name":"x","url":"https://a.example.com"}`); rec.Code != http.StatusNotFound {
		t.Errorf("destination of a missing trigger = %d", rec.Code)
	}
	// A given secret is kept and shown once; scheme none has none.
	d := v.createDestination("github.push", `{"name":"x","url":"https://a.example.com","signing":{"scheme":"hmac-sha1","secret":"0123456789abcdef0123"}}`)
	if d.Secret == nil || *d.Secret != "0123456789abcdef0123" {
		t.Errorf("given secret answered as %v", d.Secret)
	}
	n := v.createDestination("github.push", `{"name":"y","url":"https://b.example.com","signing":{"scheme":"none"}}`)
	if n.Secret != nil || n.Signing.SecretSet {
		t.Errorf("scheme none: secret %v, secret_set %v", n.Secret, n.Signing.SecretSet)
	}
	if rec := v.do(http.MethodPost, "/api/v1/destinations/"+n.ID+"/rotate-secret", ""); rec.Code != http.StatusConflict {
		t.Errorf("rotating an unsigned destination's secret = %d, want 409", rec.Code)
	}

	// An invalid PATCH changes nothing, not even its valid members.
	before := v.call(http.MethodGet, "/api/v1/destinations/"+d.ID, "", http.StatusOK, nil)
	rec = v.do(http.MethodPatch, "/api/v1/destinations/"+d.ID, `{"name":"renamed","max_in_flight":0,"url":"nope"}`)
	if pb := decodeProblem(t, rec); rec.Code != http.StatusUnprocessableEntity || len(pb.Errors) != 2 {
		t.Errorf("invalid PATCH = %d %+v", rec.Code, pb.Errors)
	}
	if after := v.call(http.MethodGet, "/api/v1/destinations/"+d.ID, "", http.StatusOK, nil); string(after) != string(before) {
		t.Errorf("an invalid PATCH changed the destination:\n%s\n%s", before, after)
	}
}

// TestDeliveriesRoutes: the deliveries of a destination and of an event,
// one delivery with its attempts, retry and recover.
func TestDeliveriesRoutes(t *testing.T) {
	v := newEnv(t)
	tr := v.createTrigger("github.push")
	dst := v.createDestination("github.push", `{"name":"ci","url":"https://ci.example.com/hook"}`)
	ids := v.seedEvents(tr, time.Now().Add(-time.Minute), `{"n":1}`, `{"n":2}`, `{"n":3}`)

	// One batch stores the three events, and their deliveries, at one
	// instant: the pages hold each once, in a stable order.
	var page deliveriesResp
	v.call(http.MethodGet, "/api/v1/destinations/"+dst.ID+"/deliveries?limit=2", "", http.StatusOK, &page)
	if len(page.Data) != 2 || page.NextCursor == nil || page.Data[0].Status != "pending" {
		t.Fatalf("first page = %+v", page)
	}
	var rest deliveriesResp
	v.call(http.MethodGet, "/api/v1/destinations/"+dst.ID+"/deliveries?limit=2&cursor="+*page.NextCursor, "", http.StatusOK, &rest)
	if len(rest.Data) != 1 || rest.NextCursor != nil {
		t.Errorf("second page = %+v", rest)
	}
	var listed []string
	for _, d := range append(page.Data, rest.Data...) {
		listed = append(listed, d.EventID)
	}
	slices.Sort(listed)
	if !slices.Equal(listed, ids) {
		t.Errorf("pages list events %v, want %v", listed, ids)
	}
	v.call(http.MethodGet, "/api/v1/destinations/"+dst.ID+"/deliveries?event_id="+ids[1], "", http.StatusOK, &page)
	if len(page.Data) != 1 || page.Data[0].EventID != ids[1] {
		t.Errorf("by event = %+v", page.Data)
	}
	v.call(http.MethodGet, "/api/v1/destinations/"+dst.ID+"/deliveries?status=failed", "", http.StatusOK, &page)
	if len(page.Data) != 0 {
		t.Errorf("failed = %+v", page.Data)
	}
	for _, q := range []string{"status=done", "event_id=123", "limit=0", "cursor=bogus"} {
		if rec := v.do(http.MethodGet, "/api/v1/destinations/"+dst.ID+"/deliveries?"+q, ""); rec.Code != http.StatusBadRequest {
			t.Errorf("?%s = %d, want 400", q, rec.Code)
		}
	}

	var evd struct {
		Data []store.Delivery `json:"data"`
	}
	v.call(http.MethodGet, "/api/v1/events/"+ids[0]+"/deliveries", "", http.StatusOK, &evd)
	if len(evd.Data) != 1 || evd.Data[0].DestinationID != dst.ID {
		t.Fatalf("event deliveries = %+v", evd.Data)
	}
	dlv := evd.Data[0]
	var one struct {
		Data struct {
			store.Delivery
			AttemptLog []store.Attempt `json:"attempt_log"`
		} `json:"data"`
	}
	v.call(http.MethodGet, "/api/v1/deliveries/"+dlv.ID, "", http.StatusOK, &one)
	if one.Data.ID != dlv.ID || one.Data.AttemptLog == nil || len(one.Data.AttemptLog) != 0 {
		t.Errorf("delivery = %+v", one.Data)
	}
	if rec := v.do(http.MethodGet, "/api/v1/deliveries/dlv_00000000000000000000000000", ""); rec.Code != http.StatusNotFound {
		t.Errorf("missing delivery = %d", rec.Code)
	}

	// Fail two deliveries, as the forwarder would after the last retry.
	if _, err := v.store.DB().Exec(`UPDATE deliveries SET status = 'failed', attempts = 9 WHERE event_id = ANY($1)`,
		fmt.Sprintf("{%s,%s}", ids[0], ids[1])); err != nil {
		t.Fatal(err)
	}
	var retried struct {
		Data store.Delivery `json:"data"`
	}
	v.call(http.MethodPost, "/api/v1/deliveries/"+dlv.ID+"/retry", "", http.StatusAccepted, &retried)
	if retried.Data.Status != "pending" || retried.Data.NextAttemptAt == nil || time.Until(*retried.Data.NextAttemptAt) > time.Second {
		t.Errorf("retried = %+v", retried.Data)
	}
	var recovered struct {
		Data map[string]int64 `json:"data"`
	}
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	v.call(http.MethodPost, "/api/v1/destinations/"+dst.ID+"/recover", `{"since":"`+since+`"}`, http.StatusOK, &recovered)
	if recovered.Data["requeued"] != 1 {
		t.Errorf("recover = %v, want the one failed delivery left", recovered.Data)
	}
	for _, body := range []string{`{"since":"yesterday"}`, `{}`} {
		if rec := v.do(http.MethodPost, "/api/v1/destinations/"+dst.ID+"/recover", body); rec.Code != http.StatusUnprocessableEntity {
			t.Errorf("recover %s = %d, want 422", body, rec.Code)
		}
	}

	// Deleting the destination cancels what is pending, and a retry of
	// its deliveries has nowhere to go.
	v.call(http.MethodDelete, "/api/v1/destinations/"+dst.ID, "", http.StatusNoContent, nil)
	v.call(http.MethodGet, "/api/v1/events/"+ids[2]+"/deliveries", "", http.StatusOK, &evd)
	if evd.Data[0].Status != "failed" || evd.Data[0].LastError != "canceled: the destination was deleted" {
		t.Errorf("after delete: %+v", evd.Data[0])
	}
	if rec := v.do(http.MethodPost, "/api/v1/deliveries/"+dlv.ID+"/retry", ""); rec.Code != http.StatusConflict {
		t.Errorf("retry after delete = %d, want 409", rec.Code)
	}
}

// TestDestinationTest: the test route sends a signed request through the
// forwarder's client and says what came of it.
func TestDestinationTest(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("github.push")
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "down for maintenance")
	}))
	defer srv.Close()
	dst := v.createDestination("github.push", `{"name":"local","url":"`+srv.URL+`"}`)

	if rec := v.do(http.MethodPost, "/api/v1/destinations/"+dst.ID+"/test", ""); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("test without a forwarder = %d, want 503", rec.Code)
	}
	v.api.forwarder = forward.New(forward.Options{Store: v.store, Guard: netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})})
	var res struct {
		Data forward.TestResult `json:"data"`
	}
	v.call(http.MethodPost, "/api/v1/destinations/"+dst.ID+"/test", `{"payload":{"ping": 1}}`, http.StatusOK, &res)
	if res.Data.Success || res.Data.StatusCode == nil || *res.Data.StatusCode != 503 || res.Data.Error == nil || *res.Data.Error != "HTTP 503" ||
		res.Data.ResponseExcerpt != "down for maintenance" {
		t.Errorf("test result = %+v", res.Data)
	}
	mu.Lock()
	if len(bodies) != 1 || !strings.Contains(bodies[0], `"payload":{"ping":1}`) || !strings.Contains(bodies[0], `"source":"test"`) {
		t.Errorf("the receiver got %q", bodies)
	}
	mu.Unlock()
	if rec := v.do(http.MethodPost, "/api/v1/destinations/"+dst.ID+"/test", `{"payload":1,"extra":2}`); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("test with an unknown member = %d", rec.Code)
	}
	// Nothing was stored.
	var n int
	if err := v.store.DB().Get(&n, `SELECT count(*) FROM events`); err != nil || n != 0 {
		t.Errorf("events after a test = %d, %v", n, err)
	}
}
