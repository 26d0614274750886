package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/problem"
)

// csrfField is the hidden form field, and csrfHeader the request header,
// that carry a session's CSRF token.
const (
	csrfField  = "csrf"
	csrfHeader = "X-CSRF-Token"
)

// csrfToken is the session's form token: an HMAC of a fixed label under
// the session's secret, so that it is never stored and cannot be derived
// without the secret.
func (s *session) csrfToken() string {
	m := hmac.New(sha256.New, s.CSRFSecret)
	m.Write([]byte("inlet console form"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF reports whether the request carries the session's token.
func (s *session) checkCSRF(c echo.Context) bool {
	got := c.Request().Header.Get(csrfHeader)
	if got == "" {
		got = c.FormValue(csrfField)
	}
	return got != "" && hmac.Equal([]byte(got), []byte(s.csrfToken()))
}

// sameOrigin reports whether a request that changes something comes from
// a console page, by the headers browsers set and pages cannot forge:
// Sec-Fetch-Site and Origin, when present.
func (h *Console) sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false // "null" among others
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	if pub, err := url.Parse(h.publicURL); err == nil && pub.Host != "" {
		return strings.EqualFold(u.Scheme, pub.Scheme) && strings.EqualFold(u.Host, pub.Host)
	}
	return false
}

// forbidden is the answer to a form post without a valid CSRF token or
// from another site.
func forbidden() error {
	return problem.New(http.StatusForbidden, problem.Invalid,
		"This form has expired or did not come from this console. Reload the page and try again.")
}
