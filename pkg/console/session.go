package console

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/store"
)

// CookieName is the session cookie's name.
const CookieName = "inlet_session"

// sessionKey holds the request's *session in the Echo context.
const sessionKey = "console.session"

// session is the signed-in session of a request.
type session struct {
	store.Session
	id    string
	token store.Token
}

// sessionOf returns the request's session, or nil before sign-in.
func sessionOf(c echo.Context) *session {
	s, _ := c.Get(sessionKey).(*session)
	return s
}

func (h *Console) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     CookieName,
		Value:    value,
		Path:     "/console",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   h.secure,
		SameSite: http.SameSiteStrictMode,
	}
}

// requireSession lets a request through only with a live session: others
// go to the sign-in page. A request that changes something must also carry
// the session's CSRF token and come from a console page.
func (h *Console) requireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ck, err := c.Cookie(CookieName)
		if err != nil || ck.Value == "" {
			return h.toSignIn(c)
		}
		sess, tok, err := h.store.GetSession(c.Request().Context(), ck.Value)
		if errors.Is(err, store.ErrNotFound) {
			c.SetCookie(h.cookie("", -1))
			return h.toSignIn(c)
		}
		if err != nil {
			return err
		}
		s := &session{Session: sess, id: ck.Value, token: tok}
		c.Set(sessionKey, s)
		if !safeMethod(c.Request().Method) {
			if !h.sameOrigin(c.Request()) || !s.checkCSRF(c) {
				return forbidden()
			}
		}
		return next(c)
	}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// toSignIn sends a request without a session to the sign-in page,
// remembering the page it asked for.
func (h *Console) toSignIn(c echo.Context) error {
	to := "/console/signin"
	if r := c.Request(); r.Method == http.MethodGet && localPath(r.URL.RequestURI()) && r.URL.Path != "/console/" {
		to += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// localPath reports whether p is a console page to return to after
// sign-in: a path, not an address elsewhere.
func localPath(p string) bool {
	return strings.HasPrefix(p, "/console/") && !strings.HasPrefix(p, "/console/signin") &&
		!strings.ContainsAny(p, "\\\r\n") && !strings.Contains(p, "//")
}

// signInPage answers GET /console/signin.
func (h *Console) signInPage(c echo.Context) error {
	if ck, err := c.Cookie(CookieName); err == nil && ck.Value != "" {
		if _, _, err := h.store.GetSession(c.Request().Context(), ck.Value); err == nil {
			return c.Redirect(http.StatusSeeOther, h.afterSignIn(c.QueryParam("next")))
		}
	}
	v := view{Title: "Sign in", Data: signInData{Next: c.QueryParam("next")}}
	if c.QueryParam("signed_out") != "" {
		v.Flash = &flash{Kind: "ok", Message: "You are signed out."}
	}
	return h.render(c, http.StatusOK, "signin", v)
}

type signInData struct {
	Next string
}

func (h *Console) afterSignIn(next string) string {
	if localPath(next) {
		return next
	}
	return "/console/"
}

// signIn answers POST /console/signin: a bearer token for a session. A
// wrong, unknown or revoked token gets the form again, saying no more.
func (h *Console) signIn(c echo.Context) error {
	if !h.sameOrigin(c.Request()) {
		return forbidden()
	}
	next := c.FormValue("next")
	plain := strings.TrimSpace(c.FormValue("token"))
	refuse := func() error {
		return h.render(c, http.StatusUnauthorized, "signin", view{Title: "Sign in", Data: signInData{Next: next},
			Error: "That token does not sign in. Check it and try again."})
	}
	if plain == "" {
		return refuse()
	}
	ctx := c.Request().Context()
	tok, err := h.store.CheckToken(ctx, plain)
	if errors.Is(err, store.ErrNotFound) {
		return refuse()
	}
	if err != nil {
		return err
	}
	_, id, err := h.store.CreateSession(ctx, tok, SessionTTL)
	if err != nil {
		return err
	}
	c.SetCookie(h.cookie(id, int(SessionTTL.Seconds())))
	h.log.Info("console sign-in", "token_id", tok.ID, "token_name", tok.Name, "source_ip", c.RealIP())
	return c.Redirect(http.StatusSeeOther, h.afterSignIn(next))
}

// signOut answers POST /console/signout.
func (h *Console) signOut(c echo.Context) error {
	s := sessionOf(c)
	if err := h.store.DeleteSession(c.Request().Context(), s.id, s.token); err != nil {
		return err
	}
	c.SetCookie(h.cookie("", -1))
	h.log.Info("console sign-out", "token_id", s.token.ID, "token_name", s.token.Name)
	return c.Redirect(http.StatusSeeOther, "/console/signin?signed_out=1")
}
