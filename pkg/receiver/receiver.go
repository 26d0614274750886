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
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/jsontext"
	"github.com/inlet-dev/inlet/pkg/metrics"
	"github.com/inlet-dev/inlet/pkg/outcome"
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
	// UnknownKeyLimit is how many unknown or revoked keys a source (an IPv4
	// address, an IPv6 /64) may name per minute before its lookups of keys
	// the receiver does not know are refused with 429. Keys it knows are
	// never refused this way.
	UnknownKeyLimit int
	// IPRateLimit, when positive, limits all requests per source per
	// minute.
	IPRateLimit int
	// TrustedProxies are the peers whose X-Forwarded-For is believed; a
	// request carrying the header from any other peer is logged once, as a
	// sign of a proxy missing from the list.
	TrustedProxies []netip.Prefix
	Metrics        *metrics.Metrics
	Logger         *slog.Logger
	// OnCommit, if set, is called with the trigger's id after an event is
	// committed (it wakes the publisher and the forwarder).
	OnCommit func(triggerID int64)
	// StoreWait bounds how long a request waits for a key lookup (and twice
	// that for its commit) before answering 503, so that a database that
	// stops answering cannot hold requests indefinitely; the first such
	// timeout opens a breaker that answers 503 at once for a while.
	// Default 2s: a lookup is one indexed read.
	StoreWait time.Duration
}

// cacheTTL is how long a cached key is used without being read again;
// changes reach the cache through notifications long before.
const cacheTTL = 5 * time.Minute

// Handler is the webhook receiver.
type Handler struct {
	brk     *breaker // shared by lookups and commits
	o       Options
	cache   *cache
	perKey  *ratelimit.Set
	unknown *ratelimit.Set
	perIP   *ratelimit.Set
	logger  *slog.Logger
	// Lines an attacker can repeat at will are sampled, each message with
	// its own sampler so that one flood does not hide another message.
	rejectedLog, notStoredLog rate.Sometimes
	forwardedLog              sync.Once // an untrusted peer's X-Forwarded-For
}

// New returns a Handler. Call Warm before serving, and Invalidate and
// Reset from the trigger-change listener so that changes reach the cache.
func New(o Options) *Handler {
	if o.StoreWait <= 0 {
		o.StoreWait = 2 * time.Second
	}
	h := &Handler{
		o:            o,
		perKey:       ratelimit.New(100_000),
		unknown:      ratelimit.New(100_000),
		perIP:        ratelimit.New(100_000),
		logger:       o.Logger.With("component", "receiver"),
		rejectedLog:  rate.Sometimes{First: 20, Interval: time.Second},
		notStoredLog: rate.Sometimes{First: 5, Interval: time.Second},
	}
	h.brk = &breaker{window: 2 * time.Second}
	h.cache = newCache(o.Store, cacheTTL, o.StoreWait, h.brk, h.logger)
	return h
}

// Register adds the receiver's route to e.
func (h *Handler) Register(e *echo.Echo) { e.POST(Path, h.Handle) }

// Warm loads every live key, so that the first request naming one is not
// a lookup (and so never refused as a guess).
func (h *Handler) Warm(ctx context.Context) { h.cache.warm(ctx, 0) }

// Invalidate reloads the keys of the trigger whose id is payload (a
// notification on store.ChannelTriggers), or every key when it is not an
// id.
func (h *Handler) Invalidate(ctx context.Context, payload string) {
	id, err := strconv.ParseInt(payload, 10, 64)
	if err != nil {
		id = 0
	}
	h.cache.changed(ctx, id)
}

// Forget reloads the keys of one trigger, for the instance that changed
// it: its next request already sees the change.
func (h *Handler) Forget(triggerID int64) { h.cache.changed(context.Background(), triggerID) }

// Reset reloads every key, as after a notification may have been missed.
func (h *Handler) Reset(ctx context.Context) { h.cache.changed(ctx, 0) }

// Close waits for the key reloads in progress.
func (h *Handler) Close() { h.cache.drain() }

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
	source    string // ratelimit.SourceKey(ip)
	ua        string
	keyPrefix string
	size      int64
	key       *entry
}

// Handle runs the checks in the contract's order.
func (h *Handler) Handle(c echo.Context) error {
	r := c.Request()
	key := c.Param("webhook_key")
	rq := &request{
		start:     time.Now(),
		ip:        c.RealIP(),
		ua:        r.UserAgent(),
		keyPrefix: trigger.KeyPrefix(key),
	}
	rq.source = ratelimit.SourceKey(rq.ip)
	if rq.size = r.ContentLength; rq.size < 0 {
		rq.size = 0
	}
	h.checkForwarded(r)
	if p := h.limitSource(rq); p != nil {
		return h.reject(c, rq, p)
	}
	var e *entry
	var err error
	switch {
	case !validKey(key):
		err = store.ErrNotFound
	case h.cache.known(key):
		e, err = h.cache.get(r.Context(), key, rq.start)
	case h.o.UnknownKeyLimit > 0 && h.unknown.Exhausted(rq.source, rq.start):
		// Only lookups of keys this instance does not know are refused, so
		// that a scanner sharing an address with real senders (a NAT, a
		// proxy missing from INLET_TRUSTED_PROXIES) cannot lock them out.
		p := problem.New(http.StatusTooManyRequests, outcome.RateLimited, "too many unknown webhook keys from this address")
		p.RetryAfter = time.Duration(float64(time.Second) / float64(h.unknownRate()))
		return h.reject(c, rq, p)
	default:
		e, err = h.cache.get(r.Context(), key, rq.start)
	}
	if errors.Is(err, store.ErrNotFound) {
		if h.o.UnknownKeyLimit > 0 {
			h.unknown.Allow(rq.source, h.unknownRate(), h.o.UnknownKeyLimit, rq.start)
		}
		return h.reject(c, rq, problem.New(http.StatusNotFound, outcome.NotFound, "no webhook with this key"))
	}
	if err != nil {
		return h.reject(c, rq, unavailable(err))
	}
	rq.key = e
	wh := e.wh
	if !wh.enabled {
		return h.reject(c, rq, problem.New(http.StatusForbidden, outcome.Disabled, "the webhook of trigger %s is disabled", wh.ref))
	}
	body, p := readBody(r, wh.limit)
	if body != nil {
		rq.size = int64(len(body))
	}
	if p != nil {
		return h.reject(c, rq, p)
	}
	if wh.allow != nil && !allowed(wh.allow, rq.ip) {
		return h.reject(c, rq, problem.New(http.StatusForbidden, outcome.IPDenied, "source address %s is not in the trigger's allowlist", rq.ip))
	}
	if wh.rateOn {
		if ok, wait := h.perKey.Allow(wh.idKey, wh.rate, wh.burst, rq.start); !ok {
			p := problem.New(http.StatusTooManyRequests, outcome.RateLimited, "rate limit of trigger %s exceeded", wh.ref)
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
	if wh.split != nil {
		return h.acceptBatch(c, rq, raw, value, r.Header)
	}
	if wh.schema != nil {
		if err := wh.schema.Validate(value); err != nil {
			return h.reject(c, rq, schemaProblem(err))
		}
	}
	if wh.mapping != nil {
		if raw, err = wh.mapping.Apply(value); err != nil {
			return h.reject(c, rq, &problem.Error{Status: http.StatusInternalServerError, Code: outcome.Internal, Detail: "payload mapping failed", Err: err})
		}
	}
	return h.accept(c, rq, raw, r.Header, value)
}

// checkForwarded logs, once, a request whose X-Forwarded-For comes from a
// peer that is not a trusted proxy: the header is ignored then, and every
// request from behind that proxy shares the proxy's address, and its rate
// and key-guessing budgets.
func (h *Handler) checkForwarded(r *http.Request) {
	if r.Header.Get(echo.HeaderXForwardedFor) == "" {
		return
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return
	}
	for _, p := range h.o.TrustedProxies {
		if p.Contains(peer.Addr().Unmap()) {
			return
		}
	}
	h.forwardedLog.Do(func() {
		h.logger.Warn("X-Forwarded-For from a peer that is not a trusted proxy is ignored; if it is your proxy, list it in INLET_TRUSTED_PROXIES",
			slog.String("peer", peer.Addr().String()))
	})
}

// limitSource applies INLET_IP_RATE_LIMIT, before any database work.
func (h *Handler) limitSource(rq *request) *problem.Error {
	if h.o.IPRateLimit <= 0 {
		return nil
	}
	if ok, wait := h.perIP.Allow(rq.source, rate.Limit(float64(h.o.IPRateLimit)/60), h.o.IPRateLimit, rq.start); !ok {
		p := problem.New(http.StatusTooManyRequests, outcome.RateLimited, "too many requests from this address")
		p.RetryAfter = wait
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
		return problem.New(http.StatusRequestEntityTooLarge, outcome.TooLarge, "body is larger than the trigger's limit of %d KB", limit/1024)
	}
	if r.ContentLength > limit {
		return nil, tooLarge()
	}
	body, err := readAll(io.LimitReader(r.Body, limit+1), r.ContentLength)
	if err != nil {
		return nil, problem.New(http.StatusBadRequest, outcome.InvalidPayload, "body could not be read completely")
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
	return problem.New(http.StatusUnauthorized, outcome.BadSignature, "%s", detail)
}

func decodeProblem(err error) *problem.Error {
	var pe *payload.Error
	if errors.As(err, &pe) {
		return problem.New(pe.Status, outcome.InvalidPayload, "%s", pe.Detail)
	}
	return problem.New(http.StatusBadRequest, outcome.InvalidPayload, "body could not be decoded")
}

// MaxViolations is how many schema violations one 422 lists; the answer
// says how many there were in all.
const MaxViolations = 50

func schemaProblem(err error) *problem.Error {
	p := problem.New(http.StatusUnprocessableEntity, outcome.SchemaMismatch, "payload does not match the trigger's schema")
	var se *payload.SchemaError
	if errors.As(err, &se) {
		vs := se.Violations
		p.Extra = map[string]any{"violations_total": len(vs)}
		if len(vs) > MaxViolations {
			vs = vs[:MaxViolations]
		}
		p.Extra["violations"] = vs
		if len(vs) > 0 {
			v := vs[0]
			p.Detail = fmt.Sprintf("payload does not match the trigger's schema: %d violation(s), first at %q: %s", len(se.Violations), v.Pointer, v.Message)
		}
	}
	return p
}

func unavailable(err error) *problem.Error {
	return &problem.Error{
		Status: http.StatusServiceUnavailable, Code: outcome.Internal,
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
	wh := rq.key.wh
	at := event.Time(rq.start)
	did := wh.deliveryID(hdr, value)
	var kept [8]keptHeader
	md := metadata{
		keyPrefix: rq.keyPrefix, keyLabel: rq.key.label, receivedAt: at, sourceIP: rq.ip, userAgent: rq.ua, deliveryID: did,
		headers: keptHeaderValues(hdr, kept[:0]),
	}
	ev := &event.Event{
		ID: event.MustNewID(at), TriggerID: wh.triggerID, TriggerRef: wh.ref, Source: event.Source,
		Payload: raw, Metadata: appendMetadata(make([]byte, 0, 512), &md), ReceivedAt: at,
	}
	if did != "" {
		ev.DeliveryID = &did
	}
	res, err := h.commit(c, rq, &store.Record{Event: ev, Audit: h.auditRow(rq, http.StatusOK, outcome.Accepted, "")})
	if err != nil {
		return err
	}
	if res.Duplicate {
		at = res.ReceivedAt // the first delivery's
	}
	d := acceptedData{Duplicate: res.Duplicate, EventID: res.EventID, ReceivedAt: at, TriggerRef: wh.ref}
	if c.Request().URL.RawQuery != "" || c.Echo().Debug {
		return c.JSON(http.StatusOK, accepted{Data: d}) // ?pretty and debug mode indent
	}
	return c.JSONBlob(http.StatusOK, appendAccepted(make([]byte, 0, 160), &d))
}

// commit stores rec and accounts for the request: it wakes the publisher
// and the forwarder when rec held anything new, and counts and logs the
// answer. Its error is the answer to return when nothing was committed.
func (h *Handler) commit(c echo.Context, rq *request, rec *store.Record) (store.Result, error) {
	// Longer than a batch's own timeout, so that a slow commit is waited for.
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*h.o.StoreWait)
	defer cancel()
	res, err := h.submit(ctx, rec)
	if err != nil {
		return res, h.failed(c, rq, err)
	}
	if h.o.OnCommit != nil && !res.Duplicate {
		h.o.OnCommit(rq.key.wh.triggerID)
	}
	oc := outcome.Accepted
	if res.Duplicate {
		oc = outcome.Duplicate
	}
	h.observe(rq, http.StatusOK, oc, res.EventID)
	return res, nil
}

// failed answers a request whose event could not be committed.
func (h *Handler) failed(c echo.Context, rq *request, err error) error {
	var p *problem.Error
	switch {
	case errors.Is(err, store.ErrOverloaded):
		p = &problem.Error{Status: http.StatusServiceUnavailable, Code: outcome.Internal, Detail: "inlet is overloaded; retry later", RetryAfter: time.Second}
	case errors.Is(err, context.Canceled):
		// The client left; the event may still be committed, with its audit
		// row, and a retry with the same delivery id is answered as a
		// duplicate. Nobody reads this answer.
		p = &problem.Error{Status: 499, Code: outcome.Internal, Detail: "client closed the request"}
		h.observe(rq, p.Status, p.Code, "")
		return p
	default:
		p = unavailable(err)
	}
	h.notStoredLog.Do(func() {
		h.logger.Warn("event not stored", slog.String("trigger_ref", rq.key.wh.ref), slog.Any("err", err))
	})
	if errors.Is(err, store.ErrOverloaded) || errors.Is(err, store.ErrClosed) || errors.Is(err, errOpen) {
		return h.reject(c, rq, p) // the writer never had the record
	}
	// The writer had it: it records the audit row once it knows whether
	// the batch committed after all (see store.Writer).
	h.observe(rq, p.Status, p.Code, "")
	return p
}

// submit queues rec for the writer unless the breaker says the database
// is not answering, and tells the breaker how it went.
func (h *Handler) submit(ctx context.Context, rec *store.Record) (store.Result, error) {
	if !h.brk.allow(time.Now()) {
		return store.Result{}, errOpen
	}
	res, err := h.o.Writer.Submit(ctx, rec)
	h.brk.report(err, time.Now())
	return res, err
}

// reject records a refused request's audit row, which the writer stores
// within about a second (folded into one row a second during a flood from
// one source), and returns its problem.
func (h *Handler) reject(c echo.Context, rq *request, p *problem.Error) error {
	h.o.Writer.RecordAudit(h.auditRow(rq, p.Status, p.Code, p.Detail))
	h.observe(rq, p.Status, p.Code, "")
	return p
}

func (h *Handler) auditRow(rq *request, status int, oc, detail string) store.Audit {
	a := store.Audit{
		ReceivedAt: event.Time(rq.start), KeyPrefix: rq.keyPrefix, SourceIP: rq.ip, UserAgent: rq.ua,
		Status: status, Outcome: oc, Detail: detail, BodySize: rq.size, Count: 1,
		DurationMS: float64(time.Now().Sub(rq.start).Microseconds()) / 1000,
	}
	if e := rq.key; e != nil {
		id, ref, kid := e.wh.triggerID, e.wh.ref, e.keyID
		a.TriggerID, a.TriggerRef, a.KeyID, a.KeyLabel = &id, &ref, &kid, e.label
	}
	return a
}

func (h *Handler) observe(rq *request, status int, oc, eventID string) {
	ref := "unknown"
	if rq.key != nil {
		ref = rq.key.wh.ref
	}
	took := time.Now().Sub(rq.start)
	h.o.Metrics.Requests.WithLabelValues(ref, oc).Inc()
	h.o.Metrics.RequestDuration.WithLabelValues(oc).Observe(took.Seconds())
	line := func() {
		h.logger.LogAttrs(context.Background(), slog.LevelInfo, "webhook",
			slog.String("trigger_ref", ref), slog.String("key_prefix", rq.keyPrefix),
			slog.String("outcome", oc), slog.Int("status", status), slog.String("source_ip", rq.ip),
			slog.Duration("duration", took), slog.String("event_id", eventID))
	}
	if !outcome.Rejected(oc) {
		line()
		return
	}
	h.rejectedLog.Do(line) // rejections are the lines an attacker can repeat at will
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

// answerHandshake answers a sender's verified handshake with body, and
// records its audit row (outcome accepted, no event).
func (h *Handler) answerHandshake(c echo.Context, rq *request, detail string, body any) error {
	h.o.Writer.RecordAudit(h.auditRow(rq, http.StatusOK, outcome.Accepted, detail))
	h.observe(rq, http.StatusOK, outcome.Accepted, "")
	return c.JSON(http.StatusOK, body)
}
