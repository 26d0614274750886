package console

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/problem"
)

// view is what every page template is executed with.
type view struct {
	// Title is the page's heading and the document title.
	Title string
	// Section is the nav entry to mark current: "triggers", "audit",
	// "events", "destinations", "activity" or "".
	Section string
	// CSRF is the session's form token; every POST form carries it as
	// the hidden field "csrf" ({{template "csrf" .}}).
	CSRF string
	// User names the token signed in, "" on the sign-in page.
	User string
	// Flash is the message left by the change before this page.
	Flash *flash
	// Data is the page's own data.
	Data any
	// Errors maps a form field ("ip_allowlist.cidrs") to the API's
	// message about it, shown next to the field.
	Errors map[string]string
	// Error is a message about the whole form.
	Error string
	// Status is the HTTP status of an error page.
	Status int
}

// FieldError returns the message for field, or "" when there is none.
func (v view) FieldError(field string) string { return v.Errors[field] }

// flash is a one-time message for the page after a change (Post,
// Redirect, Get). It is kept sealed in the session, since Secret may be
// a value the server generated and shows once.
type flash struct {
	// Kind is "ok" or "error".
	Kind    string `json:"kind"`
	Message string `json:"message"`
	// Secret is a generated value shown once with a copy button, under
	// SecretLabel.
	Secret      string `json:"secret,omitempty"`
	SecretLabel string `json:"secret_label,omitempty"`
	// URL is a new webhook URL to show at once.
	URL      string `json:"url,omitempty"`
	URLLabel string `json:"url_label,omitempty"`
}

// pages holds every page template, each parsed with the layout and the
// partials.
type pages struct {
	byName map[string]*template.Template
}

// mustParsePages parses templates/: layout.html and the partials (files
// starting with "_") go with every other file, a page named for its file.
func mustParsePages(a *assets) *pages {
	funcs := template.FuncMap{
		"asset":    a.url,
		"when":     when,
		"ago":      ago,
		"json":     prettyJSON,
		"join":     strings.Join,
		"dict":     dict,
		"add":      func(a, b int) int { return a + b },
		"health":   triggerHealthText,
		"retries":  retrySchedule,
		"iso":      iso,
		"contains": func(s []string, v string) bool { return containsString(s, v) },
	}
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html"))
	partials, _ := fs.Glob(templateFiles, "templates/_*.html")
	if len(partials) > 0 {
		template.Must(base.ParseFS(templateFiles, partials...))
	}
	files, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		panic(err)
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" || strings.HasPrefix(name, "_") {
			continue
		}
		t := template.Must(template.Must(base.Clone()).ParseFS(templateFiles, f))
		p.byName[name] = t
	}
	return p
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// dict builds a map from key, value pairs, to pass several values to a
// partial.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, errors.New("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, errors.New("dict: key is not a string")
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// timeOf is the time a template passed, a time.Time or a *time.Time;
// nil is the zero time.
func timeOf(v any) time.Time {
	switch x := v.(type) {
	case time.Time:
		return x
	case *time.Time:
		if x != nil {
			return *x
		}
	}
	return time.Time{}
}

// when formats a time for a page, in UTC; nil or zero is "never".
func when(v any) string {
	t := timeOf(v)
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// ago says how long ago a time was, roughly; nil or zero is "never".
func ago(v any) string {
	t := timeOf(v)
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h ago"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " days ago"
}

// prettyJSON indents a JSON document, or marshals a value indented.
func prettyJSON(v any) string {
	var raw []byte
	switch x := v.(type) {
	case json.RawMessage:
		raw = x
	case []byte:
		raw = x
	case string:
		raw = []byte(x)
	default:
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return ""
		}
		return string(b)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return string(raw)
	}
	return out.String()
}

// render executes page name with v and sends it with status. The view's
// session fields (CSRF, User, Flash) are filled from the request.
func (h *Console) render(c echo.Context, status int, name string, v view) error {
	t, ok := h.pages.byName[name]
	if !ok {
		return fmt.Errorf("no page template %q", name)
	}
	if s := sessionOf(c); s != nil {
		v.CSRF = s.csrfToken()
		v.User = s.token.Name
		if v.Flash == nil && s.HasFlash {
			v.Flash = h.takeFlash(c, s)
		}
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(status)
	_, err := c.Response().Write(buf.Bytes())
	return err
}

// setFlash keeps f for the session's next page.
func (h *Console) setFlash(c echo.Context, f flash) {
	s := sessionOf(c)
	if s == nil {
		return
	}
	b, err := json.Marshal(f)
	if err == nil {
		err = h.store.SetFlash(c.Request().Context(), s.id, string(b))
	}
	if err != nil {
		// The change was made; only its message is lost.
		h.log.Warn("cannot keep a message for the next page", slog.Any("err", err))
	}
}

func (h *Console) takeFlash(c echo.Context, s *session) *flash {
	msg, err := h.store.TakeFlash(c.Request().Context(), s.id)
	if err != nil {
		h.log.Warn("cannot read the message for this page", slog.Any("err", err))
		return nil
	}
	if msg == "" {
		return nil
	}
	var f flash
	if json.Unmarshal([]byte(msg), &f) != nil {
		return nil
	}
	return &f
}

// redirect answers a form post by sending the browser to a page (Post,
// Redirect, Get); ok is the message that page shows.
func (h *Console) redirect(c echo.Context, to string, f *flash) error {
	if f != nil {
		h.setFlash(c, *f)
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// errorPages renders every error a console handler returns as an HTML
// page: the console never answers with problem+json.
func (h *Console) errorPages(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err == nil || c.Response().Committed {
			return err
		}
		p := problem.From(err)
		var ae *apiError
		if errors.As(err, &ae) {
			p = &problem.Error{Status: ae.Status, Code: ae.Code, Detail: ae.Detail}
		}
		if p.Status >= 500 {
			h.log.Error("console request failed", slog.String("method", c.Request().Method),
				slog.String("path", c.Path()), slog.Int("status", p.Status), slog.Any("err", err))
		}
		msg := p.Detail
		switch {
		case p.Status == http.StatusNotFound && ae == nil:
			msg = "There is no such page."
		case p.Status >= 500 && ae == nil:
			msg = "Something went wrong on the server; it has been logged."
		}
		if p.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(p.RetryAfter/time.Second)))
		}
		if rerr := h.render(c, p.Status, "error", view{Title: http.StatusText(p.Status), Error: msg, Status: p.Status}); rerr != nil {
			h.log.Error("cannot render an error page", slog.Any("err", rerr))
			return c.String(p.Status, msg)
		}
		return nil
	}
}

// assets are the embedded static files, served under a name that carries
// a hash of their content so that browsers may keep them.
type assets struct {
	files map[string]asset // by name without hash: "console.css"
}

type asset struct {
	body  []byte
	hash  string
	ctype string
}

func loadAssets() *assets {
	a := &assets{files: map[string]asset{}}
	err := fs.WalkDir(staticFiles, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		a.files[strings.TrimPrefix(p, "static/")] = asset{body: b, hash: hex.EncodeToString(sum[:6]), ctype: ctype}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return a
}

// url is the address of a static file, with its content hash.
func (a *assets) url(name string) string {
	f, ok := a.files[name]
	if !ok {
		return "/console/static/" + name
	}
	return "/console/static/" + name + "?v=" + f.hash
}

// static serves GET /console/static/:name.
func (h *Console) static(c echo.Context) error {
	f, ok := h.assets.files[c.Param("*")]
	if !ok {
		return echo.ErrNotFound
	}
	hdr := c.Response().Header()
	if c.QueryParam("v") == f.hash {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	hdr.Set("ETag", `"`+f.hash+`"`)
	if c.Request().Header.Get("If-None-Match") == `"`+f.hash+`"` {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, f.ctype, f.body)
}

// iso formats a time for a datetime attribute; nil or zero is "".
func iso(v any) string {
	switch x := v.(type) {
	case time.Time:
		if !x.IsZero() {
			return x.UTC().Format(time.RFC3339)
		}
	case *time.Time:
		if x != nil {
			return x.UTC().Format(time.RFC3339)
		}
	}
	return ""
}
