package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/store"
)

// tokenKey holds the request's store.Token in the Echo context.
const tokenKey = "inlet.token"

// caller returns the token a request authenticated with.
func caller(c echo.Context) store.Token {
	t, _ := c.Get(tokenKey).(store.Token)
	return t
}

// unauthorized is the only answer to a request without a live token, so
// that it reveals nothing about the route or the resource asked for.
func unauthorized(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="inlet"`)
	return problem.New(http.StatusUnauthorized, problem.Unauthorized, "missing or invalid bearer token")
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header, or "" when the header is missing or malformed.
func bearerToken(header string) string {
	scheme, token, ok := strings.Cut(header, " ")
	// The scheme is case-insensitive (RFC 9110, section 11.1); the token
	// is one run of non-space characters.
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return ""
	}
	return token
}

// auth lets a request through only with a live bearer token. Tokens are
// stored as hashes and compared in constant time by the store.
func (a *API) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := bearerToken(c.Request().Header.Get(echo.HeaderAuthorization))
		if token == "" {
			return unauthorized(c)
		}
		tok, err := a.store.CheckToken(c.Request().Context(), token)
		if errors.Is(err, store.ErrNotFound) {
			return unauthorized(c)
		}
		if err != nil {
			return &problem.Error{Status: http.StatusServiceUnavailable, Code: outcome.Internal,
				Detail: "cannot check the bearer token now", RetryAfter: retryAfterUnavailable, Err: err}
		}
		c.Set(tokenKey, tok)
		// Every change the request makes is recorded as this token's.
		r := c.Request()
		c.SetRequest(r.WithContext(store.WithActor(r.Context(), store.TokenActor(tok))))
		return next(c)
	}
}
