package test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go/jetstream"
)

// relSender posts signed deliveries to one trigger, the way its real sender
// would: a delivery id header for de-duplication and an HMAC signature.
type relSender struct {
	ref    string
	key    string
	secret string
	build  func(delivery string) (body []byte, header map[string]string)
}

// relDeploymentSender signs with the default scheme and names deliveries with
// X-Webhook-ID, as a CI pipeline would.
func relDeploymentSender(key, secret string) relSender {
	return relSender{ref: "myapp.deployment_complete", key: key, secret: secret, build: func(d string) ([]byte, map[string]string) {
		body := deployment(d)
		return body, map[string]string{"X-Webhook-ID": d, "X-Webhook-Signature": sign(secret, body)}
	}}
}

// relGitHubSender signs as GitHub does and names deliveries with
// X-GitHub-Delivery.
func relGitHubSender(key, secret string) relSender {
	return relSender{ref: "github.push", key: key, secret: secret, build: func(d string) ([]byte, map[string]string) {
		body := []byte(`{"ref":"refs/heads/main","after":"` + d + `","repository":{"full_name":"inlet-dev/chaos"}}`)
		return body, map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": d, "X-Hub-Signature-256": sign(secret, body)}
	}}
}

// relAttempt is one HTTP request of the load and what became of it. Each has
// a User-Agent of its own, which the audit row and the event's metadata
// keep, so that rows can be traced back to the request that wrote them.
type relAttempt struct {
	delivery  string
	ref       string
	ua        string
	status    int // 0: no answer (connection refused or cut)
	eventID   string
	duplicate bool
	err       string
	took      time.Duration
	header    http.Header
	problem   string // the problem code of an error answer
	sig       string // the signature sent, hex
	start     time.Time
}

// relLoad drives deliveries at one inlet and remembers every attempt. A
// delivery is retried with the same id until it is answered 200, as real
// senders retry; it counts as resolved then.
type relLoad struct {
	base    string
	client  *http.Client
	senders []relSender

	mu         sync.Mutex
	attempts   []*relAttempt
	byDelivery map[string][]*relAttempt
	unresolved []relDelivery // deliveries stopped before a 200
	// sequences holds, per worker of a run, the event ids its deliveries
	// were accepted as, in the order it sent them one after another.
	sequences [][]string

	ua       atomic.Int64
	accepted atomic.Int64 // 200 answers
	answered atomic.Int64
	cut      atomic.Int64 // attempts without an answer
}

type relDelivery struct {
	id string
	s  relSender
}

func newRelLoad(base string, senders ...relSender) *relLoad {
	return &relLoad{
		base:       base,
		senders:    senders,
		byDelivery: map[string][]*relAttempt{},
		client: &http.Client{
			Timeout:   15 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64},
		},
	}
}

// post sends one attempt of d and records it.
func (l *relLoad) post(d relDelivery) *relAttempt {
	body, hdr := d.s.build(d.id)
	a := &relAttempt{delivery: d.id, ref: d.s.ref, ua: "rel/" + strconv.FormatInt(l.ua.Add(1), 10)}
	defer l.record(a)
	req, err := http.NewRequest(http.MethodPost, l.base+"/api/v1/webhooks/"+d.s.key, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", a.ua)
	for k, v := range hdr {
		req.Header.Set(k, v)
		if strings.Contains(k, "Signature") {
			a.sig = strings.TrimPrefix(v, "sha256=")
		}
	}
	a.start = time.Now()
	res, err := l.client.Do(req)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(res.Body)
		res.Body.Close()
		if err == nil {
			l.answer(a, res, b)
		}
	}
	a.took = time.Since(a.start)
	if err != nil {
		a.status, a.err = 0, err.Error()
		l.cut.Add(1)
	}
	return a
}

// record adds a finished attempt.
func (l *relLoad) record(a *relAttempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts = append(l.attempts, a)
	l.byDelivery[a.delivery] = append(l.byDelivery[a.delivery], a)
}

func (l *relLoad) answer(a *relAttempt, res *http.Response, body []byte) {
	a.status, a.header = res.StatusCode, res.Header
	l.answered.Add(1)
	if res.StatusCode != http.StatusOK {
		var p struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(body, &p)
		a.problem = p.Code
		return
	}
	var ok struct {
		Data struct {
			EventID   string `json:"event_id"`
			Duplicate bool   `json:"duplicate"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &ok)
	a.eventID, a.duplicate = ok.Data.EventID, ok.Data.Duplicate
	l.accepted.Add(1)
}

// run starts workers that send deliveries until ctx is done; the returned
// func waits for them. Worker w sends to senders[w % len(senders)], one
// delivery at a time, retrying each until it is answered 200.
func (l *relLoad) run(ctx context.Context, workers int) (wait func()) {
	var wg sync.WaitGroup
	l.mu.Lock()
	run := len(l.sequences)
	seqs := make([][]string, workers)
	l.mu.Unlock()
	for w := range workers {
		wg.Add(1)
		go func() { // owned by run's caller through wait
			defer wg.Done()
			defer func() {
				l.mu.Lock()
				l.sequences = append(l.sequences, seqs[w])
				l.mu.Unlock()
			}()
			s := l.senders[w%len(l.senders)]
			for n := 0; ctx.Err() == nil; n++ {
				d := relDelivery{id: fmt.Sprintf("d-%d-%d-%d", run, w, n), s: s}
				for ctx.Err() == nil {
					a := l.post(d)
					if a.status == http.StatusOK {
						seqs[w] = append(seqs[w], a.eventID)
						break
					}
					if ctx.Err() != nil {
						l.mu.Lock()
						l.unresolved = append(l.unresolved, d)
						l.mu.Unlock()
						return
					}
					relSleep(ctx, 20*time.Millisecond) // inlet is down or shedding: retry as a sender would
				}
			}
		}()
	}
	return wg.Wait
}

// resolve retries every delivery the load stopped before its 200, as a
// sender retries after an outage, until each is answered 200.
func (l *relLoad) resolve(t *testing.T, timeout time.Duration) {
	t.Helper()
	l.mu.Lock()
	pending := l.unresolved
	l.unresolved = nil
	l.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for _, d := range pending {
		for {
			a := l.post(d)
			if a.status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("delivery %s still not accepted after %v: last answer %d %s %s", d.id, timeout, a.status, a.problem, a.err)
			}
			time.Sleep(50 * time.Millisecond) // retry pacing, as above
		}
	}
}

// relFigures are what a reliability run produced, for the README.
type relFigures struct {
	requests, accepted, cut, otherStatus, deliveries, events, messages, audit int
	// forwarded is set when every event was also forwarded to a
	// destination; deliveryRepeats counts the requests it got twice.
	forwarded       bool
	deliveryRepeats int
}

func (f relFigures) String() string {
	s := fmt.Sprintf("requests sent %d, answered 200 %d, cut without answer %d, other answers %d; deliveries %d, events stored %d, messages published %d, audit rows %d",
		f.requests, f.accepted, f.cut, f.otherStatus, f.deliveries, f.events, f.messages, f.audit)
	if f.forwarded {
		s += fmt.Sprintf("; forwarded to a destination, %d repeated", f.deliveryRepeats)
	}
	return s
}

// accountFor checks that the database and the stream hold exactly what the
// answers promised:
//
//   - every delivery answered 200 has exactly one event, the one every 200
//     named, and exactly one stream message with Nats-Msg-Id = its id;
//   - no event exists that no request could have created, and no request
//     answered with an error created one;
//   - each event has its accepted audit row, written by the request that
//     created it;
//   - every answered request has exactly one audit row with the status it
//     got; a request cut by a kill has at most one. In modeGraceful (no
//     SIGKILL happened) a request without an answer was never processed:
//     it has neither audit row nor event. In modeDBOutage a request
//     answered 503 because the database was gone has no audit row (it
//     was part of the failed transaction), and if the database went away
//     between its commit and the acknowledgement (or, frozen, committed
//     only after inlet had given up waiting), it may have an event and an
//     accepted audit row: the sender's retry is then answered as a
//     duplicate of it;
//   - every event is published.
func (l *relLoad) accountFor(t *testing.T, db *sqlx.DB, msgIDs map[string]int, mode accountMode) relFigures {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()

	var events []struct {
		ID         string         `db:"id"`
		Ref        string         `db:"trigger_ref"`
		DeliveryID sql.NullString `db:"delivery_id"`
		UA         sql.NullString `db:"ua"`
	}
	if err := db.Select(&events, `SELECT id, trigger_ref, delivery_id, metadata->>'user_agent' AS ua FROM events`); err != nil {
		t.Fatal(err)
	}
	var audits []struct {
		UA      string         `db:"user_agent"`
		Status  int            `db:"status"`
		Outcome string         `db:"outcome"`
		EventID sql.NullString `db:"event_id"`
		Count   int            `db:"count"`
	}
	if err := db.Select(&audits, `SELECT user_agent, status, outcome, event_id, count FROM audit_log`); err != nil {
		t.Fatal(err)
	}
	var unpublished int
	if err := db.Get(&unpublished, `SELECT count(*) FROM events e, publish_position p WHERE (e.xid, e.seq) > (p.xid, p.seq)`); err != nil {
		t.Fatal(err)
	}

	byUA := map[string]*relAttempt{}
	f := relFigures{requests: len(l.attempts), deliveries: len(l.byDelivery), events: len(events)}
	for _, r := range audits {
		if strings.HasPrefix(r.UA, "rel/") {
			f.audit++
		}
	}
	for _, a := range l.attempts {
		byUA[a.ua] = a
		switch a.status {
		case 0:
			f.cut++
		case http.StatusOK:
			f.accepted++
		default:
			f.otherStatus++
		}
	}
	for _, n := range msgIDs {
		f.messages += n
	}

	var problems []string
	fail := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}

	eventsByDelivery := map[string][]string{}
	eventByID := map[string]int{}
	for i, e := range events {
		eventByID[e.ID] = i
		if !e.DeliveryID.Valid {
			fail("event %s has no delivery id", e.ID)
			continue
		}
		eventsByDelivery[e.DeliveryID.String] = append(eventsByDelivery[e.DeliveryID.String], e.ID)
		if _, ok := l.byDelivery[e.DeliveryID.String]; !ok {
			fail("event %s holds delivery %s that was never sent", e.ID, e.DeliveryID.String)
		}
		a := byUA[e.UA.String]
		switch {
		case a == nil:
			fail("event %s was created by user agent %q, which no request had", e.ID, e.UA.String)
		case a.status == 0 && mode == modeGraceful:
			fail("event %s was created by request %s, which got no answer although inlet was only ever stopped gracefully", e.ID, a.ua)
		case mode == modeDBOutage && a.status == http.StatusServiceUnavailable:
			// committed, then the acknowledgement was lost with the database
		case a.status != 0 && (a.status != http.StatusOK || a.eventID != e.ID || a.duplicate):
			fail("event %s was created by request %s, which was answered %d (event %q, duplicate %v)", e.ID, a.ua, a.status, a.eventID, a.duplicate)
		}
		if n := msgIDs[e.ID]; n != 1 {
			fail("event %s (%s) was published %d times, want exactly once", e.ID, e.Ref, n)
		}
	}
	for id := range msgIDs {
		if _, ok := eventByID[id]; !ok {
			fail("stream message %s has no event", id)
		}
	}
	for d, as := range l.byDelivery {
		var id string
		for _, a := range as {
			if a.status != http.StatusOK {
				continue
			}
			if id != "" && a.eventID != id {
				fail("delivery %s was answered with events %s and %s", d, id, a.eventID)
			}
			id = a.eventID
		}
		got := eventsByDelivery[d]
		switch {
		case id == "":
			fail("delivery %s was never answered 200 (%d attempts)", d, len(as))
		case len(got) != 1 || got[0] != id:
			fail("delivery %s answered 200 with event %s is stored as %v, want exactly that event", d, id, got)
		}
	}

	auditsByUA := map[string]int{}
	folded503 := 0 // 503s counted in rows of other requests while the database was down
	acceptedAudit := map[string]int{}
	lateAudit := map[string]int{} // events stored after their request was answered 503
	for _, r := range audits {
		if !strings.HasPrefix(r.UA, "rel/") {
			continue // another kind of request the test made
		}
		auditsByUA[r.UA]++
		if r.Count > 1 {
			if mode != modeDBOutage || r.Status != http.StatusServiceUnavailable {
				fail("audit row of request %s stands for %d requests (%d %s)", r.UA, r.Count, r.Status, r.Outcome)
			}
			folded503 += r.Count - 1
		}
		a := byUA[r.UA]
		if a == nil {
			fail("audit row of user agent %q (%d %s), which no request had", r.UA, r.Status, r.Outcome)
			continue
		}
		if r.Outcome == "accepted" && r.EventID.Valid {
			acceptedAudit[r.EventID.String]++
		}
		if a.status == 0 {
			if mode == modeGraceful {
				fail("request %s got no answer, yet was processed (audit %d %s)", a.ua, r.Status, r.Outcome)
			}
			continue
		}
		if mode == modeDBOutage && a.status == http.StatusServiceUnavailable && r.EventID.Valid {
			// Committed after inlet gave up waiting for the commit: the row
			// names the event and says what the request was answered.
			if r.Status != http.StatusServiceUnavailable || r.Outcome != "error" {
				fail("audit row of request %s, answered 503 but stored, says %d %s", a.ua, r.Status, r.Outcome)
			}
			lateAudit[r.EventID.String]++
			continue
		}
		wantOutcome := a.problem
		if a.status == http.StatusOK {
			wantOutcome = "accepted"
			if a.duplicate {
				wantOutcome = "duplicate"
			}
			if r.EventID.String != a.eventID {
				fail("audit row of request %s names event %q, the answer %q", a.ua, r.EventID.String, a.eventID)
			}
		}
		if r.Status != a.status || r.Outcome != wantOutcome {
			fail("audit row of request %s says %d %s, the answer was %d %s", a.ua, r.Status, r.Outcome, a.status, wantOutcome)
		}
	}
	for _, a := range l.attempts {
		n := auditsByUA[a.ua]
		if mode == modeDBOutage && a.status == http.StatusServiceUnavailable && n == 0 && folded503 > 0 {
			folded503-- // counted in another request's row while the database was down
			continue
		}
		if a.status != 0 && n != 1 {
			fail("request %s answered %d has %d audit rows, want 1", a.ua, a.status, n)
		}
		if a.status == 0 && n > 1 {
			fail("request %s has %d audit rows", a.ua, n)
		}
	}
	for _, e := range events {
		if n := acceptedAudit[e.ID] + lateAudit[e.ID]; n != 1 {
			fail("event %s has %d accepted audit rows, want 1", e.ID, n)
		}
	}
	if unpublished != 0 {
		fail("%d events still unpublished", unpublished)
	}
	for _, p := range problems {
		t.Error(p)
	}
	return f
}

// accountMode says which faults a run went through; see accountFor.
type accountMode int

const (
	modeKilled   accountMode = iota // SIGKILL: requests may be cut mid-way
	modeGraceful                    // no abrupt stop: every processed request was answered
	modeDBOutage                    // the database went away under load
)

// relStreamIDs waits until the stream holds at least want messages (or wait
// passes), then reads every message and counts them by Nats-Msg-Id. It
// also returns the ids in stream order.
func relStreamIDs(t *testing.T, js jetstream.JetStream, stream string, want int, wait time.Duration) (map[string]int, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait+60*time.Second)
	defer cancel()
	deadline := time.Now().Add(wait)
	var total uint64
	for {
		if s, err := js.Stream(ctx, stream); err == nil {
			if info, err := s.Info(ctx); err == nil {
				total = info.State.Msgs
			}
		}
		if int(total) >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	ids := map[string]int{}
	var order []string
	if total == 0 {
		return ids, nil
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("consumer on %s: %v", stream, err)
	}
	for got := uint64(0); got < total; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatalf("fetch from %s: %v", stream, err)
		}
		n := 0
		for m := range batch.Messages() {
			id := m.Headers().Get("Nats-Msg-Id")
			ids[id]++
			order = append(order, id)
			n++
		}
		if n == 0 && ctx.Err() != nil {
			t.Fatalf("read %d of %d messages of %s", got, total, stream)
		}
		got += uint64(n)
	}
	return ids, order
}

// mark returns how many attempts have finished so far.
func (l *relLoad) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.attempts)
}

// latencies returns how long attempts [from, to) took, of those answered.
func (l *relLoad) latencies(from, to int) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Duration
	for _, a := range l.attempts[from:to] {
		if a.status != 0 {
			out = append(out, a.took)
		}
	}
	return out
}

// checkOrder checks that every worker's events appear in the stream in
// the order the worker had them accepted: a worker sends to one trigger and
// waits for each answer, so this is inlet's promise of order per trigger.
func (l *relLoad) checkOrder(t *testing.T, order []string) {
	t.Helper()
	pos := make(map[string]int, len(order))
	for i, id := range order {
		pos[id] = i
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	bad := 0
	for w, seq := range l.sequences {
		for i := 1; i < len(seq); i++ {
			prev, ok1 := pos[seq[i-1]]
			cur, ok2 := pos[seq[i]]
			if ok1 && ok2 && cur <= prev && bad < 10 {
				bad++
				t.Errorf("worker %d: event %s was published before %s, which was accepted earlier", w, seq[i], seq[i-1])
			}
		}
	}
}

// relPercentile returns the p-th percentile (0..1) of ds.
func relPercentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}
