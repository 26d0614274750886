// Package receiver handles POST /api/v1/webhooks/:webhook_key: it runs the
// contract's checks in order, answers with the first failure, and records
// an audit row for every request, accepted or not. Accepted events are
// committed by the group-commit writer before the 200 is sent.
package receiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/jsontext"
	"github.com/inlet-dev/inlet/pkg/metrics"
	"github.com/inlet-dev/inlet/pkg/payload"
	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/ratelimit"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/trigger"
	"github.com/inlet-dev/inlet/pkg/verify"
)

// Path is the receiver's route.
const Path = "/api/v1/webhooks/:webhook_key"

// Options configure a Handler.
type Options struct {
	Store  *store.Store
	Writer *store.Writer
	// PublicURL is the base URL senders post to; Twilio signs it.
	PublicURL string
	// UnknownKeyLimit is how many unknown or revoked keys a source IP may
	// name per minute before it gets 429 without a lookup.
	UnknownKeyLimit int
	// IPRateLimit, when positive, limits all requests per source IP per
	// minute.
	IPRateLimit int
	Metrics     *metrics.Metrics
	Logger      *slog.Logger
	// OnCommit, if set, is called after an event is committed (it wakes the
	// publisher).
	OnCommit func()
	// StoreWait bounds how long a request waits for a key lookup (and twice
	// that for its commit) before answering 503, so that a database that
	// stops answering cannot hold requests indefinitely; the first such
	// timeout opens a breaker that answers 503 at once for a while.
	// Default 2s: a lookup is one indexed read.
	StoreWait time.Duration
	// Now and CacheTTL are for tests.
	Now      func() time.Time
	CacheTTL time.Duration
}

// Handler is the webhook receiver.
type Handler struct {
	brk      *breaker // shared by lookups and commits
	o        Options
	cache    *cache
	perKey   *ratelimit.Set
	unknown  *ratelimit.Set
	perIP    *ratelimit.Set
	logger   *slog.Logger
	sometime rate.Sometimes // for lines an attacker can repeat at will
}

// New returns a Handler. Call Invalidate and Reset from the trigger-change
// listener so that settings changes reach the cache.
func New(o Options) *Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = 5 * time.Minute
	}
	if o.StoreWait <= 0 {
		o.StoreWait = 2 * time.Second
	}
	h := &Handler{
		o:        o,
		perKey:   ratelimit.New(100_000),
		unknown:  ratelimit.New(100_000),
		perIP:    ratelimit.New(100_000),
		logger:   o.Logger.With("component", "receiver"),
		sometime: rate.Sometimes{First: 20, Interval: time.Second},
	}
	h.brk = &breaker{window: 2 * time.Second}
	h.cache = newCache(o.Store.LookupKey, o.CacheTTL, o.StoreWait, h.brk)
	return h
}

// Register adds the receiver's route to e.
func (h *Handler) Register(e *echo.Echo) { e.POST(Path, h.Handle) }

// Invalidate drops cached settings of the trigger whose id is payload (a
// notification on store.ChannelTriggers).
func (h *Handler) Invalidate(payload string) { h.cache.invalidate(payload) }

// Forget drops cached settings of one trigger.
func (h *Handler) Forget(triggerID int64) { h.cache.forget(triggerID) }

// Reset drops every cached setting.
func (h *Handler) Reset() { h.cache.reset() }

// validKey reports whether key has the form of a webhook key, wh_ and 32
// characters from [A-Za-z0-9]; anything else is unknown without a lookup.
func validKey(key string) bool {
	if len(key) != 35 || key[:3] != "wh_" {
		return false
	}
	for i := 3; i < len(key); i++ {
		if c := key[i]; (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// request is what the receiver learns about one request as it goes.
type request struct {
	start     time.Time
	ip        string
	ua        string
	keyPrefix string
	size      int64
	wh        *webhook
}

// Handle runs the checks in the contract's order.
func (h *Handler) Handle(c echo.Context) error {
	r := c.Request()
	rq := &request{
		start:     h.o.Now(),
		ip:        c.RealIP(),
		ua:        r.UserAgent(),
		keyPrefix: trigger.KeyPrefix(c.Param("webhook_key")),
	}
	if rq.size = r.ContentLength; rq.size < 0 {
		rq.size = 0
	}
	if p := h.preLookup(rq); p != nil {
		return h.reject(c, rq, p)
	}
	key := c.Param("webhook_key")
	var wh *webhook
	var err error
	if validKey(key) {
		wh, err = h.cache.get(r.Context(), key, rq.start)
	} else {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		if h.o.UnknownKeyLimit > 0 {
			h.unknown.Allow(rq.ip, h.unknownRate(), h.o.UnknownKeyLimit, rq.start)
		}
		return h.reject(c, rq, problem.New(http.StatusNotFound, problem.NotFound, "no webhook with this key"))
	}
	if err != nil {
		return h.reject(c, rq, unavailable(err))
	}
	rq.wh = wh
	if !wh.enabled {
		return h.reject(c, rq, problem.New(http.StatusForbidden, problem.Disabled, "the webhook of trigger %s is disabled", wh.ref))
	}
	body, p := readBody(r, wh.limit)
	if body != nil {
		rq.size = int64(len(body))
	}
	if p != nil {
		return h.reject(c, rq, p)
	}
	if wh.allow != nil && !allowed(wh.allow, rq.ip) {
		return h.reject(c, rq, problem.New(http.StatusForbidden, problem.IPDenied, "source address %s is not in the trigger's allowlist", rq.ip))
	}
	if wh.rateOn {
		if ok, wait := h.perKey.Allow(fmt.Sprint(wh.triggerID), wh.rate, wh.burst, rq.start); !ok {
			p := problem.New(http.StatusTooManyRequests, problem.RateLimited, "rate limit of trigger %s exceeded", wh.ref)
			p.RetryAfter = wait
			return h.reject(c, rq, p)
		}
	}
	if wh.hmacOn {
		if p := h.verify(r, wh, body, rq.start); p != nil {
			return h.reject(c, rq, p)
		}
	}
	raw, value, err := payload.Decode(r.Header.Get("Content-Type"), body)
	if err != nil {
		return h.reject(c, rq, decodeProblem(err))
	}
	// Senders' handshakes are answered, audited and not stored as events:
	// they are signed like deliveries but are not about anything.
	if wh.hmacOn && wh.hmac.Preset == "slack" {
		if challenge, ok := slackChallenge(value); ok {
			return h.answerHandshake(c, rq, "answered Slack url_verification challenge", map[string]string{"challenge": challenge})
		}
	}
	if wh.hmacOn && wh.hmac.Preset == "github" && r.Header.Get("X-GitHub-Event") == "ping" {
		return h.answerHandshake(c, rq, "answered GitHub ping", map[string]any{"data": map[string]any{"ping": true, "trigger_ref": wh.ref}})
	}
	if wh.schema != nil {
		if err := wh.schema.Validate(value); err != nil {
			return h.reject(c, rq, schemaProblem(err))
		}
	}
	if wh.mapping != nil {
		if raw, err = wh.mapping.Apply(value); err != nil {
			return h.reject(c, rq, &problem.Error{Status: http.StatusInternalServerError, Code: problem.Internal, Detail: "payload mapping failed", Err: err})
		}
	}
	return h.accept(c, rq, raw, r.Header, value)
}

// preLookup applies the per-source-IP protections that run before any
// database work.
func (h *Handler) preLookup(rq *request) *problem.Error {
	if h.o.IPRateLimit > 0 {
		if ok, wait := h.perIP.Allow(rq.ip, rate.Limit(float64(h.o.IPRateLimit)/60), h.o.IPRateLimit, rq.start); !ok {
			p := problem.New(http.StatusTooManyRequests, problem.RateLimited, "too many requests from this address")
			p.RetryAfter = wait
			return p
		}
	}
	if h.o.UnknownKeyLimit > 0 && h.unknown.Exhausted(rq.ip, rq.start) {
		p := problem.New(http.StatusTooManyRequests, problem.RateLimited, "too many unknown webhook keys from this address")
		p.RetryAfter = time.Duration(float64(time.Second) / float64(h.unknownRate()))
		return p
	}
	return nil
}

func (h *Handler) unknownRate() rate.Limit {
	if h.o.UnknownKeyLimit <= 0 {
		return rate.Inf
	}
	return rate.Limit(float64(h.o.UnknownKeyLimit) / 60)
}

// readBody reads at most limit+1 bytes, refusing a body over limit whether
// or not Content-Length announced it.
func readBody(r *http.Request, limit int64) ([]byte, *problem.Error) {
	tooLarge := func() *problem.Error {
		return problem.New(http.StatusRequestEntityTooLarge, problem.TooLarge, "body is larger than the trigger's limit of %d KB", limit/1024)
	}
	if r.ContentLength > limit {
		return nil, tooLarge()
	}
	body, err := readAll(io.LimitReader(r.Body, limit+1), r.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge()
		}
		return nil, problem.New(http.StatusBadRequest, problem.InvalidPayload, "body could not be read completely")
	}
	if int64(len(body)) > limit {
		return body, tooLarge()
	}
	return body, nil
}

// maxPrealloc bounds the buffer readAll allocates on a sender's word,
// before any of the body has arrived.
const maxPrealloc = 64 << 10

// readAll is io.ReadAll starting from a buffer of the announced length
// (plus the byte that shows EOF, up to maxPrealloc), so that a body costs
// one allocation instead of a doubling series from 512 bytes. A sender that
// announces less than it sends only makes the buffer grow; r bounds what is
// read.
func readAll(r io.Reader, announced int64) ([]byte, error) {
	b := make([]byte, 0, min(max(announced+1, 512), maxPrealloc))
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

func allowed(prefixes []netip.Prefix, ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (h *Handler) verify(r *http.Request, wh *webhook, body []byte, now time.Time) *problem.Error {
	cfg := verify.Config{
		Preset:    wh.hmac.Preset,
		Algorithm: wh.hmac.Algorithm,
		Header:    wh.hmac.Header,
		Secrets:   wh.hmac.Secrets(now),
		Tolerance: wh.hmac.Tolerance(),
	}
	err := verify.Verify(cfg, verify.Request{Header: r.Header, Body: body, URL: h.o.PublicURL + r.URL.RequestURI(), Now: now})
	if err == nil {
		return nil
	}
	detail := "signature verification failed"
	var ve *verify.Error
	if errors.As(err, &ve) {
		detail = ve.Detail
	}
	return problem.New(http.StatusUnauthorized, problem.BadSignature, "%s", detail)
}

func decodeProblem(err error) *problem.Error {
	var pe *payload.Error
	if errors.As(err, &pe) {
		return problem.New(pe.Status, problem.InvalidPayload, "%s", pe.Detail)
	}
	return problem.New(http.StatusBadRequest, problem.InvalidPayload, "body could not be decoded")
}

func schemaProblem(err error) *problem.Error {
	p := problem.New(http.StatusUnprocessableEntity, problem.SchemaMismatch, "payload does not match the trigger's schema")
	var se *payload.SchemaError
	if errors.As(err, &se) {
		p.Extra = map[string]any{"violations": se.Violations}
		if len(se.Violations) > 0 {
			v := se.Violations[0]
			p.Detail = fmt.Sprintf("payload does not match the trigger's schema: %d violation(s), first at %q: %s", len(se.Violations), v.Pointer, v.Message)
		}
	}
	return p
}

func unavailable(err error) *problem.Error {
	return &problem.Error{
		Status: http.StatusServiceUnavailable, Code: problem.Internal,
		Detail: "storage is unavailable; retry later", RetryAfter: 5 * time.Second, Err: err,
	}
}

// accepted is the body of a 200, its fields in the order encoding/json
// sorts the keys of a map, which is how it used to be built.
type accepted struct {
	Data acceptedData `json:"data"`
}

type acceptedData struct {
	Duplicate  bool      `json:"duplicate"`
	EventID    string    `json:"event_id"`
	ReceivedAt time.Time `json:"received_at"`
	TriggerRef string    `json:"trigger_ref"`
}

// appendAccepted appends the JSON of d exactly as Echo's c.JSON writes it
// (encoding/json, compact, with a final newline).
func appendAccepted(dst []byte, d *acceptedData) []byte {
	dst = append(dst, `{"data":{"duplicate":`...)
	dst = strconv.AppendBool(dst, d.Duplicate)
	dst = append(dst, `,"event_id":`...)
	dst = jsontext.AppendString(dst, d.EventID)
	dst = append(dst, `,"received_at":"`...)
	dst = d.ReceivedAt.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","trigger_ref":`...)
	dst = jsontext.AppendString(dst, d.TriggerRef)
	return append(dst, "}}\n"...)
}

// accept stores the event and its audit row in one transaction and answers
// 200 only after the commit.
func (h *Handler) accept(c echo.Context, rq *request, raw json.RawMessage, hdr http.Header, value any) error {
	wh := rq.wh
	at := event.Time(rq.start)
	did := wh.deliveryID(hdr, value)
	var kept [8]keptHeader
	md := metadata{
		keyPrefix: rq.keyPrefix, receivedAt: at, sourceIP: rq.ip, userAgent: rq.ua, deliveryID: did,
		headers: keptHeaderValues(hdr, kept[:0]),
	}
	ev := &event.Event{
		ID: event.MustNewID(at), TriggerID: wh.triggerID, TriggerRef: wh.ref, Source: event.Source,
		Payload: raw, Metadata: appendMetadata(make([]byte, 0, 512), &md), ReceivedAt: at,
	}
	if did != "" {
		ev.DeliveryID = &did
	}
	rec := &store.Record{Event: ev, Audit: h.auditRow(rq, http.StatusOK, problem.Accepted, "")}
	// Longer than a batch's own timeout, so that a slow commit is waited for.
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*h.o.StoreWait)
	defer cancel()
	res, err := h.submit(ctx, rec)
	if err != nil {
		return h.failed(c, rq, err)
	}
	if h.o.OnCommit != nil && !res.Duplicate {
		h.o.OnCommit()
	}
	outcome := problem.Accepted
	if res.Duplicate {
		outcome = problem.Duplicate
	}
	h.observe(rq, http.StatusOK, outcome, res.EventID)
	d := acceptedData{Duplicate: res.Duplicate, EventID: res.EventID, ReceivedAt: at, TriggerRef: wh.ref}
	if c.Request().URL.RawQuery != "" || c.Echo().Debug {
		return c.JSON(http.StatusOK, accepted{Data: d}) // ?pretty and debug mode indent
	}
	return c.JSONBlob(http.StatusOK, appendAccepted(make([]byte, 0, 160), &d))
}

// failed answers a request whose event could not be committed. Its audit
// row was part of the failed batch, so none is stored.
func (h *Handler) failed(c echo.Context, rq *request, err error) error {
	var p *problem.Error
	switch {
	case errors.Is(err, store.ErrOverloaded):
		p = &problem.Error{Status: http.StatusServiceUnavailable, Code: problem.Internal, Detail: "inlet is overloaded; retry later", RetryAfter: time.Second}
	case errors.Is(err, context.Canceled):
		// The client left; the event may still be committed, and a retry
		// with the same delivery id is answered as a duplicate.
		p = &problem.Error{Status: 499, Code: problem.Internal, Detail: "client closed the request"}
	default:
		p = unavailable(err)
	}
	if !errors.Is(err, context.Canceled) {
		h.o.Metrics.AuditDropped.Inc()
	}
	h.sometime.Do(func() {
		h.logger.Warn("event not stored", slog.String("trigger_ref", rq.wh.ref), slog.Any("err", err))
	})
	h.observe(rq, p.Status, problem.Internal, "")
	return p
}

// submit queues rec for the writer unless the breaker says the database
// is not answering, and tells the breaker how it went.
func (h *Handler) submit(ctx context.Context, rec *store.Record) (store.Result, error) {
	if !h.brk.allow(h.o.Now()) {
		return store.Result{}, errOpen
	}
	res, err := h.o.Writer.Submit(ctx, rec)
	h.brk.report(err, h.o.Now())
	return res, err
}

// reject audits a refused request, then returns its problem. The audit row
// is committed before the answer, so that every answered request has one;
// if it cannot be written the answer goes out anyway.
func (h *Handler) reject(c echo.Context, rq *request, p *problem.Error) error {
	if p.Status == http.StatusServiceUnavailable {
		// The database is what failed: its audit row cannot be written,
		// and waiting for it would only delay the answer.
		h.o.Metrics.AuditDropped.Inc()
		h.observe(rq, p.Status, p.Code, "")
		return p
	}
	rec := &store.Record{Audit: h.auditRow(rq, p.Status, p.Code, p.Detail)}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), h.o.StoreWait)
	defer cancel()
	if _, err := h.submit(ctx, rec); err != nil {
		h.o.Metrics.AuditDropped.Inc()
		h.sometime.Do(func() {
			h.logger.Warn("audit record not stored", slog.String("outcome", p.Code), slog.Any("err", err))
		})
	}
	h.observe(rq, p.Status, p.Code, "")
	return p
}

func (h *Handler) auditRow(rq *request, status int, outcome, detail string) store.Audit {
	a := store.Audit{
		ReceivedAt: event.Time(rq.start), KeyPrefix: rq.keyPrefix, SourceIP: rq.ip, UserAgent: rq.ua,
		Status: status, Outcome: outcome, Detail: detail, BodySize: rq.size,
		DurationMS: float64(h.o.Now().Sub(rq.start).Microseconds()) / 1000,
	}
	if rq.wh != nil {
		id, ref := rq.wh.triggerID, rq.wh.ref
		a.TriggerID, a.TriggerRef = &id, &ref
	}
	return a
}

func (h *Handler) observe(rq *request, status int, outcome, eventID string) {
	ref := "unknown"
	if rq.wh != nil {
		ref = rq.wh.ref
	}
	took := h.o.Now().Sub(rq.start)
	h.o.Metrics.Requests.WithLabelValues(ref, outcome).Inc()
	h.o.Metrics.RequestDuration.WithLabelValues(outcome).Observe(took.Seconds())
	line := func() {
		h.logger.LogAttrs(context.Background(), slog.LevelInfo, "webhook",
			slog.String("trigger_ref", ref), slog.String("key_prefix", rq.keyPrefix),
			slog.String("outcome", outcome), slog.Int("status", status), slog.String("source_ip", rq.ip),
			slog.Duration("duration", took), slog.String("event_id", eventID))
	}
	if outcome == problem.Accepted || outcome == problem.Duplicate {
		line()
		return
	}
	h.sometime.Do(line) // rejections are the lines an attacker can repeat at will

}

// slackChallenge recognises Slack's url_verification request, which must be
// answered with its challenge before Slack sends any event.
func slackChallenge(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok || m["type"] != "url_verification" {
		return "", false
	}
	ch, ok := m["challenge"].(string)
	return ch, ok
}

// answerHandshake answers a sender's verified handshake with body, after
// its audit row (outcome accepted, no event) is committed.
func (h *Handler) answerHandshake(c echo.Context, rq *request, detail string, body any) error {
	rec := &store.Record{Audit: h.auditRow(rq, http.StatusOK, problem.Accepted, detail)}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*h.o.StoreWait)
	defer cancel()
	if _, err := h.submit(ctx, rec); err != nil {
		return h.failed(c, rq, err)
	}
	h.observe(rq, http.StatusOK, problem.Accepted, "")
	return c.JSON(http.StatusOK, body)
}
