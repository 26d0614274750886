package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sendgridSigner signs bodies as SendGrid's Signed Event Webhook does:
// ECDSA P-256 over the SHA-256 of the timestamp followed by the body, the
// DER signature in base64; its verification key is the base64 of the DER
// public key, as SendGrid's settings page shows it.
type sendgridSigner struct {
	key    *ecdsa.PrivateKey
	public string
}

func newSendGridSigner(t *testing.T) sendgridSigner {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return sendgridSigner{key: k, public: base64.StdEncoding.EncodeToString(der)}
}

func (s sendgridSigner) headers(t *testing.T, body []byte) map[string]string {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	digest := sha256.Sum256(append([]byte(ts), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, s.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"Content-Type":                           "application/json;charset=utf-8",
		"X-Twilio-Email-Event-Webhook-Signature": base64.StdEncoding.EncodeToString(sig),
		"X-Twilio-Email-Event-Webhook-Timestamp": ts,
	}
}

type batchResp struct {
	Data struct {
		Events []struct {
			EventID   string `json:"event_id"`
			Duplicate bool   `json:"duplicate"`
		} `json:"events"`
		TriggerRef string `json:"trigger_ref"`
	} `json:"data"`
}

// TestSendGridBatch posts SendGrid Event Webhook batches to the sendgrid
// pack's trigger: each element is an event, de-duplicated on its
// sg_event_id, published on its own; a bad element refuses the whole
// request and stores nothing.
func TestSendGridBatch(t *testing.T) {
	e := newEnv(t)
	const ref = "sendgrid.events"
	key := e.enable(ref)
	signer := newSendGridSigner(t)
	e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"hmac": map[string]any{"secret": signer.public}})
	sample := loadRecording(t, "sendgrid/events.json")
	var elements []map[string]any
	if err := json.Unmarshal(sample.body, &elements); err != nil {
		t.Fatal(err)
	}

	post := func(body []byte) response {
		t.Helper()
		return e.post(key, body, signer.headers(t, body))
	}
	// Unsigned: refused, as any signed trigger's request.
	if r := e.post(key, sample.body, map[string]string{"Content-Type": "application/json"}); r.status != 401 {
		t.Fatalf("unsigned batch = %d %s", r.status, r.body)
	}

	r := post(sample.body)
	if r.status != 200 {
		t.Fatalf("batch = %d %s", r.status, r.body)
	}
	var res batchResp
	_ = json.Unmarshal(r.body, &res)
	if len(res.Data.Events) != 3 || res.Data.TriggerRef != ref {
		t.Fatalf("answer = %s", r.body)
	}
	msgs := e.streamMessages(3, 10*time.Second)
	if len(msgs) != 3 {
		t.Fatalf("stream has %d messages, want 3", len(msgs))
	}
	for i, m := range msgs {
		var ev struct {
			ID       string          `json:"id"`
			Payload  json.RawMessage `json:"payload"`
			Metadata struct {
				DeliveryID string `json:"delivery_id"`
			} `json:"metadata"`
		}
		_ = json.Unmarshal(m.Data, &ev)
		want, _ := json.Marshal(elements[i])
		var got map[string]any
		_ = json.Unmarshal(ev.Payload, &got)
		gotJSON, _ := json.Marshal(got)
		if ev.ID != res.Data.Events[i].EventID || string(gotJSON) != string(want) ||
			ev.Metadata.DeliveryID != elements[i]["sg_event_id"] {
			t.Errorf("message %d: id %s, delivery id %s, payload %s; want %s, %s, element %d",
				i, ev.ID, ev.Metadata.DeliveryID, ev.Payload, res.Data.Events[i].EventID, elements[i]["sg_event_id"], i)
		}
	}
	var audit struct {
		Outcome    string `db:"outcome"`
		EventCount int    `db:"event_count"`
	}
	// An accepted request's audit record commits with its events.
	if err := e.db.Get(&audit, `SELECT outcome, event_count FROM audit_log WHERE trigger_ref = $1 AND status = 200 ORDER BY id DESC LIMIT 1`, ref); err != nil {
		t.Fatal(err)
	}
	if audit.Outcome != "accepted" || audit.EventCount != 3 {
		t.Errorf("audit = %+v, want one accepted record with 3 events", audit)
	}

	// SendGrid retries a batch whole, and may mix old events with new: only
	// the new one is stored.
	fresh := map[string]any{"email": "kim@example.com", "event": "click", "timestamp": 1763020900, "sg_event_id": "bmV3LWNsaWNr"}
	mixed, _ := json.Marshal([]any{elements[1], fresh})
	r = post(mixed)
	_ = json.Unmarshal(r.body, &res)
	if r.status != 200 || len(res.Data.Events) != 2 || !res.Data.Events[0].Duplicate || res.Data.Events[1].Duplicate {
		t.Fatalf("mixed batch = %d %s, want the old element a duplicate and the new one stored", r.status, r.body)
	}
	if n := e.count(`SELECT count(*) FROM events WHERE trigger_ref = $1`, ref); n != 4 {
		t.Errorf("events = %d, want 4", n)
	}

	// A bad element: 422 naming it, and nothing of the batch stored.
	bad := map[string]any{"email": 42, "event": "open", "timestamp": 1763020901, "sg_event_id": "YmFk"}
	good := map[string]any{"email": "lee@example.com", "event": "open", "timestamp": 1763020902, "sg_event_id": "Z29vZA"}
	body, _ := json.Marshal([]any{good, bad})
	r = post(body)
	if r.status != 422 || r.json["code"] != "schema_mismatch" || !strings.Contains(string(r.body), `"pointer":"/1/email"`) {
		t.Errorf("batch with a bad element = %d %s, want 422 naming /1/email", r.status, r.body)
	}
	if n := e.count(`SELECT count(*) FROM events WHERE trigger_ref = $1`, ref); n != 4 {
		t.Errorf("events after a refused batch = %d, want still 4", n)
	}

	// Nothing to split, and too much.
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`[]`, 422},
		{`{"email":"x@example.com"}`, 422},
		{"[" + strings.Repeat(`{"email":"a@example.com","event":"open","timestamp":1},`, 1000) + `{"email":"a@example.com","event":"open","timestamp":1}]`, 413},
	} {
		if r := post([]byte(tc.body)); r.status != tc.status {
			t.Errorf("batch %.40s... = %d %s, want %d", tc.body, r.status, r.body, tc.status)
		}
	}
	if n := e.count(`SELECT count(*) FROM events WHERE trigger_ref = $1`, ref); n != 4 {
		t.Errorf("events = %d, want 4", n)
	}
}

// TestBatchHeaderDeliveryID: a split trigger whose delivery id comes from
// a header gives each element the header's id and its index, so that a
// repeated request repeats every element.
func TestBatchHeaderDeliveryID(t *testing.T) {
	e := newEnv(t)
	e.mustAdmin(201, "POST", "/api/v1/triggers", map[string]any{"ref": "segment.batch",
		"webhook": map[string]any{"enabled": true, "split": "$.batch[*]", "payload_mapping": map[string]string{"type": "$.type", "user": "$.userId"}}})
	key := e.mustAdmin(200, "GET", "/api/v1/triggers/segment.batch/webhooks", nil)["data"].(map[string]any)["webhook_key"].(string)
	body := []byte(`{"batch":[{"type":"track","userId":"u1","event":"Signed Up"},{"type":"identify","userId":"u2"}],"sentAt":"2026-11-28T10:00:00Z"}`)
	hdr := map[string]string{"X-Webhook-ID": "req-77"}
	for i, wantDup := range []bool{false, true} {
		r := e.post(key, body, hdr)
		var res batchResp
		_ = json.Unmarshal(r.body, &res)
		if r.status != 200 || len(res.Data.Events) != 2 || res.Data.Events[0].Duplicate != wantDup || res.Data.Events[1].Duplicate != wantDup {
			t.Fatalf("post %d = %d %s", i, r.status, r.body)
		}
	}
	var rows []struct {
		DeliveryID string `db:"delivery_id"`
		Payload    string `db:"payload"`
	}
	if err := e.db.Select(&rows, `SELECT delivery_id, payload::text AS payload FROM events ORDER BY seq`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].DeliveryID != "req-77#0" || rows[1].DeliveryID != "req-77#1" ||
		rows[0].Payload != `{"type":"track","user":"u1"}` {
		t.Errorf("events = %+v", rows)
	}
}
