package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/problem"
)

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
		ok, err := a.store.CheckToken(c.Request().Context(), token)
		if err != nil {
			return &problem.Error{Status: http.StatusServiceUnavailable, Code: problem.Internal,
				Detail: "cannot check the bearer token now", RetryAfter: retryAfterUnavailable, Err: err}
		}
		if !ok {
			return unauthorized(c)
		}
		return next(c)
	}
}
