package api

import (
	"context"
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

type callerKey struct{}

// WithCaller returns ctx carrying tok as the caller of a request served
// in-process, for a server-side client such as the console that has
// already authenticated its user as tok (by a session tied to the live
// token). A request with such a context and no Authorization header is
// served as if it had sent tok's bearer token: with the same checks,
// validation and activity records.
//
// This is safe because only code in this process can set a request's
// context; nothing a client sends over the network can.
func WithCaller(ctx context.Context, tok store.Token) context.Context {
	return context.WithValue(ctx, callerKey{}, tok)
}

// auth lets a request through only with a live bearer token, or from an
// in-process caller (WithCaller). Tokens are stored as hashes and compared
// in constant time by the store.
func (a *API) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		header := c.Request().Header.Get(echo.HeaderAuthorization)
		if tok, ok := c.Request().Context().Value(callerKey{}).(store.Token); ok && header == "" {
			return a.serveAs(c, tok, next)
		}
		token := bearerToken(header)
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
		return a.serveAs(c, tok, next)
	}
}

// serveAs serves c as a request authenticated with tok.
func (a *API) serveAs(c echo.Context, tok store.Token, next echo.HandlerFunc) error {
	c.Set(tokenKey, tok)
	// Every change the request makes is recorded as this token's.
	r := c.Request()
	c.SetRequest(r.WithContext(store.WithActor(r.Context(), store.TokenActor(tok))))
	return next(c)
}
