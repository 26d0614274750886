package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/inlet-dev/inlet/pkg/destination"
	"github.com/inlet-dev/inlet/pkg/netguard"
	"github.com/inlet-dev/inlet/pkg/sign"
)

// The results of an attempt, as in inlet_delivery_attempts_total.
const (
	Success = "success"
	Failure = "failure" // an answer other than 2xx, or a connection error
	Timeout = "timeout"
	Refused = "refused" // the address is not allowed (netguard)
)

// Limits of what is read of an answer.
const (
	// ExcerptBytes is how much of an answer an attempt keeps.
	ExcerptBytes = 1024
	// drainBytes is how much more is read, and dropped, so that the
	// connection can carry the next request; a longer answer closes it.
	drainBytes = 64 << 10
)

// client sends the requests of one destination over connections of its
// own.
type client struct {
	http *http.Client
}

func newClient(guard *netguard.Guard) *client {
	t := &http.Transport{
		// No proxy: the guard must judge the destination's address, not a
		// proxy's.
		Proxy:                 nil,
		DialContext:           guard.Dialer(10 * time.Second).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          destination.MaxMaxInFlight,
		MaxIdleConnsPerHost:   destination.MaxMaxInFlight,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &client{http: &http.Client{
		Transport: t,
		// A redirect is an answer like any other that is not 2xx.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (c *client) closeIdle() { c.http.CloseIdleConnections() }

// Outcome is what one request to a destination came to.
type Outcome struct {
	Result     string
	StartedAt  time.Time
	Duration   time.Duration
	StatusCode *int
	// Error says why the attempt failed, without the URL; "" on success.
	Error string
	// Excerpt is the first ExcerptBytes of the answer, as valid UTF-8.
	Excerpt string
}

// DurationMS is the attempt's duration in milliseconds.
func (o Outcome) DurationMS() float64 { return float64(o.Duration) / float64(time.Millisecond) }

// send POSTs body to d, signed for the event id at the time of sending,
// within d's timeout (and until ctx is canceled).
func (c *client) send(ctx context.Context, d *destination.Destination, userAgent, id string, body []byte) Outcome {
	start := time.Now()
	out := Outcome{StartedAt: start.UTC(), Result: Failure}
	finish := func(result, msg string) Outcome {
		out.Duration = time.Since(start)
		out.Result, out.Error = result, msg
		return out
	}
	signed, err := sign.Sign(d.Scheme, id, start, body, d.Secrets(start))
	if err != nil {
		return finish(Failure, "cannot sign the request: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(ctx, d.Timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return finish(Failure, "invalid destination URL")
	}
	for name, v := range d.Headers {
		req.Header.Set(name, string(v))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	for _, h := range signed {
		req.Header.Set(h.Name, h.Value)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return finish(classify(ctx, err, d.Timeout()))
	}
	defer resp.Body.Close()
	code := resp.StatusCode
	out.StatusCode = &code
	excerpt, err := io.ReadAll(io.LimitReader(resp.Body, ExcerptBytes))
	out.Excerpt = excerptText(excerpt)
	if err == nil && len(excerpt) == ExcerptBytes {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBytes))
	}
	switch {
	case err != nil && !errors.Is(err, io.EOF):
		// The status came but the answer did not: within the timeout,
		// that is a failed attempt, as is any answer not read in time.
		result, msg := classify(ctx, err, d.Timeout())
		return finish(result, fmt.Sprintf("HTTP %d, then %s", code, msg))
	case code >= 200 && code < 300:
		return finish(Success, "")
	case code >= 300 && code < 400:
		return finish(Failure, fmt.Sprintf("HTTP %d: redirects are not followed", code))
	}
	return finish(Failure, "HTTP "+strconv.Itoa(code))
}

// classify names why a request failed, and the result it counts as. The
// URL, which url.Error repeats, is left out: it may carry a credential.
func classify(ctx context.Context, err error, timeout time.Duration) (string, string) {
	var refused *netguard.RefusedError
	if errors.As(err, &refused) {
		return Refused, refused.Error()
	}
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return Timeout, "timed out after " + timeout.String()
	}
	if errors.Is(err, context.Canceled) {
		return Failure, "canceled"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return Failure, err.Error()
}

// excerptText makes the start of an answer storable text: a multi-byte
// character cut at the end is dropped, invalid bytes and NUL replaced.
func excerptText(b []byte) string {
	for i := 1; i < utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				b = b[:len(b)-i]
			}
			break
		}
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}
