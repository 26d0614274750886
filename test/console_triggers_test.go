package test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// formClient is an HTTP client with a cookie jar that does not follow
// redirects, so that each answer can be checked.
type formClient struct {
	t    *testing.T
	e    *env
	c    *http.Client
	last formPage
}

// formPage is an answer of the console.
type formPage struct {
	status int
	header http.Header
	body   string
}

func newFormClient(t *testing.T, e *env) *formClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &formClient{t: t, e: e, c: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *formClient) send(req *http.Request) formPage {
	b.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	p := formPage{status: res.StatusCode, header: res.Header, body: string(body)}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		b.last = p
	}
	return p
}

func (b *formClient) get(path string) formPage {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.e.base+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.send(req)
}

// post submits a form as a browser on a console page does: same origin.
func (b *formClient) post(path string, form url.Values, header ...string) formPage {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.e.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.e.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	return b.send(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the form token of the last page shown.
func (b *formClient) csrf() string {
	b.t.Helper()
	m := csrfRE.FindStringSubmatch(b.last.body)
	if m == nil {
		b.t.Fatalf("no CSRF token on the last formPage:\n%s", b.last.body)
	}
	return m[1]
}

// form posts fields with the CSRF token of the last page.
func (b *formClient) form(path string, fields ...string) formPage {
	b.t.Helper()
	v := url.Values{"csrf": {b.csrf()}}
	for i := 0; i+1 < len(fields); i += 2 {
		v.Add(fields[i], fields[i+1])
	}
	return b.post(path, v)
}

func (b *formClient) signIn(token string) formPage {
	b.t.Helper()
	return b.post("/console/signin", url.Values{"token": {token}})
}

// sessionCookie returns the formClient's session cookie value, "" if none.
func (b *formClient) sessionCookie() string {
	u, _ := url.Parse(b.e.base + "/console/")
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "inlet_session" {
			return c.Value
		}
	}
	return ""
}

// wantRedirect checks that p sends the formClient to a path starting with to.
func wantRedirect(t *testing.T, p formPage, to string) {
	t.Helper()
	if p.status != http.StatusSeeOther && p.status != http.StatusFound && p.status != http.StatusMovedPermanently {
		t.Fatalf("status = %d, want a redirect to %s; body:\n%s", p.status, to, p.body)
	}
	if loc := p.header.Get("Location"); !strings.HasPrefix(loc, to) {
		t.Fatalf("Location = %q, want %s", loc, to)
	}
}

const wantCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// inlineRE finds what the CSP forbids: inline script and style.
var inlineRE = regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=|javascript:`)

// wantSecure checks the security headers every console answer carries,
// and that a page has nothing inline.
func wantSecure(t *testing.T, what string, p formPage) {
	t.Helper()
	if got := p.header.Get("Content-Security-Policy"); got != wantCSP {
		t.Errorf("%s: Content-Security-Policy = %q, want %q", what, got, wantCSP)
	}
	if got := p.header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options = %q", what, got)
	}
	if got := p.header.Get("Referrer-Policy"); got == "" {
		t.Errorf("%s: no Referrer-Policy", what)
	}
	if strings.HasPrefix(p.header.Get("Content-Type"), "text/html") {
		if got := p.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control = %q, want no-store", what, got)
		}
		if m := inlineRE.FindString(p.body); m != "" {
			t.Errorf("%s: inline script or style %q", what, m)
		}
	}
}

// The console's sign-in, session, CSRF and security headers, and the
// triggers list with its webhook toggle, against one real gateway.
func TestConsoleSessions(t *testing.T) {
	e := newEnv(t)
	st := store.New(e.db, nil)
	ctx := context.Background()

	t.Run("signed out", func(t *testing.T) {
		b := newFormClient(t, e)
		p := b.get("/console/")
		wantRedirect(t, p, "/console/signin")
		wantSecure(t, "redirect", p)
		p = b.get("/console/triggers/github.push")
		wantRedirect(t, p, "/console/signin?next=%2Fconsole%2Ftriggers%2Fgithub.push")
		p = b.get("/console/signin")
		if p.status != 200 || !strings.Contains(p.body, `<label for="token">`) {
			t.Fatalf("sign-in formPage = %d:\n%s", p.status, p.body)
		}
		wantSecure(t, "sign-in formPage", p)
		// A form post without a session changes nothing and goes to sign in.
		p = b.post("/console/triggers/github.push/enable", url.Values{"csrf": {"x"}})
		wantRedirect(t, p, "/console/signin")
		p = b.get("/console/static/console.css")
		if p.status != 200 || !strings.HasPrefix(p.header.Get("Content-Type"), "text/css") {
			t.Errorf("console.css = %d %s", p.status, p.header.Get("Content-Type"))
		}
		wantSecure(t, "stylesheet", p)
		wantSecure(t, "unknown static file", b.get("/console/static/nothing.js"))
	})

	t.Run("wrong tokens", func(t *testing.T) {
		b := newFormClient(t, e)
		b.get("/console/signin")
		for name, tok := range map[string]string{
			"empty":        "",
			"wrong":        "inlet_wrong",
			"never issued": store.TokenPrefix + trigger.RandomString(store.TokenLen-len(store.TokenPrefix)),
			"with suffix":  e.token + "x",
		} {
			p := b.signIn(tok)
			if p.status != http.StatusUnauthorized {
				t.Errorf("%s token: status %d, want 401", name, p.status)
			}
			if !strings.Contains(p.body, "That token does not sign in") || !strings.Contains(p.body, `<label for="token">`) {
				t.Errorf("%s token: no sign-in form with the error:\n%s", name, p.body)
			}
			if tok != "" && strings.Contains(p.body, tok) {
				t.Errorf("%s token: the formPage repeats the token", name)
			}
			wantSecure(t, name+" token", p)
			if b.sessionCookie() != "" {
				t.Fatalf("%s token: a session cookie was set", name)
			}
		}
		// A sign-in form posted from another site is refused.
		p := b.post("/console/signin", url.Values{"token": {e.token}}, "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site")
		if p.status != http.StatusForbidden || b.sessionCookie() != "" {
			t.Errorf("cross-site sign-in = %d, cookie %v; want 403 and none", p.status, b.sessionCookie() != "")
		}
	})

	b := newFormClient(t, e)
	t.Run("sign in", func(t *testing.T) {
		p := b.signIn(e.token)
		wantRedirect(t, p, "/console/")
		wantSecure(t, "sign-in answer", p)
		var ck *http.Cookie
		for _, c := range (&http.Response{Header: p.header}).Cookies() {
			if c.Name == "inlet_session" {
				ck = c
			}
		}
		if ck == nil {
			t.Fatal("no inlet_session cookie")
		}
		if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console" || ck.MaxAge != 12*3600 || ck.Secure {
			t.Errorf("cookie = %+v, want HttpOnly, SameSite=Strict, Path=/console, Max-Age=43200, not Secure over http", ck)
		}
		if n := e.count(`SELECT count(*) FROM activity WHERE action = 'console.sign_in'`); n != 1 {
			t.Errorf("%d sign-ins recorded, want 1", n)
		}
		if strings.Contains(e.logs.String(), e.token) {
			t.Errorf("the token was logged")
		}
	})

	t.Run("triggers list and toggle", func(t *testing.T) {
		p := b.get("/console/")
		if p.status != 200 || !strings.Contains(p.body, "github.push") || !strings.Contains(p.body, "myapp.deployment_complete") {
			t.Fatalf("triggers formPage = %d:\n%s", p.status, p.body)
		}
		wantSecure(t, "triggers formPage", p)
		if !strings.Contains(p.body, `<main id="main"`) || !strings.Contains(p.body, `href="#main"`) {
			t.Errorf("no main landmark or skip link")
		}
		p = b.form("/console/triggers/myapp.deployment_complete/enable", "back", "/console/")
		wantRedirect(t, p, "/console/")
		p = b.get("/console/")
		if !strings.Contains(p.body, "Webhook of myapp.deployment_complete enabled") {
			t.Errorf("no message after enabling:\n%s", p.body)
		}
		if p = b.get("/console/"); strings.Contains(p.body, "Webhook of myapp.deployment_complete enabled") {
			t.Errorf("the message is shown twice")
		}
		info := e.mustAdmin(200, "GET", "/api/v1/triggers/myapp.deployment_complete/webhooks", nil)["data"].(map[string]any)
		key := *strPtr(info["webhook_key"])
		if r := e.post(key, deployment("1.0"), nil); r.status != 200 {
			t.Fatalf("webhook after enabling = %d %s", r.status, r.body)
		}
		var who string
		if err := e.db.Get(&who, `SELECT token_name FROM activity WHERE action = 'webhook.enable' ORDER BY id DESC LIMIT 1`); err != nil || who != "admin" {
			t.Errorf("enable recorded as %q (%v), want the signed-in token's", who, err)
		}
		b.form("/console/triggers/myapp.deployment_complete/disable")
		if r := e.post(key, deployment("1.1"), nil); r.status != 403 {
			t.Errorf("webhook after disabling = %d, want 403", r.status)
		}
		p = b.form("/console/triggers/nope.nothing/enable")
		if p.status != 404 || !strings.Contains(p.body, "trigger not found") {
			t.Errorf("enable an unknown trigger = %d:\n%s", p.status, p.body)
		}
		wantSecure(t, "API error formPage", p)
	})

	t.Run("CSRF", func(t *testing.T) {
		b.get("/console/")
		good := b.csrf()
		enabled := func() bool {
			return e.count(`SELECT count(*) FROM triggers WHERE ref = 'github.push' AND webhook_enabled`) == 1
		}
		was := enabled()
		path := "/console/triggers/github.push/enable"
		for _, tt := range []struct {
			name   string
			form   url.Values
			header []string
		}{
			{"no token", url.Values{}, nil},
			{"wrong token", url.Values{"csrf": {"x" + good}}, nil},
			{"other site", url.Values{"csrf": {good}}, []string{"Origin", "http://evil.example"}},
			{"null origin", url.Values{"csrf": {good}}, []string{"Origin", "null"}},
			{"cross-site fetch", url.Values{"csrf": {good}}, []string{"Sec-Fetch-Site", "cross-site"}},
		} {
			p := b.post(path, tt.form, tt.header...)
			if p.status != http.StatusForbidden {
				t.Errorf("%s: status %d, want 403", tt.name, p.status)
			}
			wantSecure(t, tt.name, p)
		}
		if enabled() != was {
			t.Errorf("a refused form changed the webhook")
		}
		// Without Origin and Sec-Fetch-Site (older browsers), the token
		// alone decides.
		p := b.post(path, url.Values{"csrf": {good}}, "Origin", "", "Sec-Fetch-Site", "")
		wantRedirect(t, p, "/console/")
		if !enabled() {
			t.Errorf("a valid form did not enable the webhook")
		}
	})

	t.Run("errors are pages", func(t *testing.T) {
		for _, path := range []string{"/console/nothing/here", "/console/static/"} {
			p := b.get(path)
			if p.status != 404 || !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") {
				t.Errorf("GET %s = %d %s, want a 404 formPage", path, p.status, p.header.Get("Content-Type"))
			}
			wantSecure(t, path, p)
		}
		req, _ := http.NewRequest(http.MethodDelete, e.base+"/console/", nil)
		wantSecure(t, "DELETE /console/", b.send(req))
	})

	t.Run("expired session", func(t *testing.T) {
		b2 := newFormClient(t, e)
		wantRedirect(t, b2.signIn(e.token), "/console/")
		if _, err := e.db.Exec(`UPDATE console_sessions SET expires_at = now() - interval '1 second' WHERE created_at = (SELECT max(created_at) FROM console_sessions)`); err != nil {
			t.Fatal(err)
		}
		wantRedirect(t, b2.get("/console/"), "/console/signin")
	})

	t.Run("revoked token", func(t *testing.T) {
		tok, plain, err := st.CreateToken(ctx, "short-lived", store.OriginCLI)
		if err != nil {
			t.Fatal(err)
		}
		b2 := newFormClient(t, e)
		wantRedirect(t, b2.signIn(string(plain)), "/console/")
		if p := b2.get("/console/"); p.status != 200 {
			t.Fatalf("signed in with a new token: %d", p.status)
		}
		if _, err := st.RevokeToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		wantRedirect(t, b2.get("/console/"), "/console/signin")
		if p := b2.signIn(string(plain)); p.status != http.StatusUnauthorized {
			t.Errorf("sign-in with a revoked token = %d, want 401", p.status)
		}
	})

	t.Run("sign out", func(t *testing.T) {
		b.get("/console/")
		old := b.sessionCookie()
		p := b.form("/console/signout")
		wantRedirect(t, p, "/console/signin")
		if b.sessionCookie() != "" {
			t.Errorf("the session cookie is still set")
		}
		// The old cookie, replayed, no longer signs in.
		req, _ := http.NewRequest(http.MethodGet, e.base+"/console/", nil)
		req.AddCookie(&http.Cookie{Name: "inlet_session", Value: old})
		res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/console/signin") {
			t.Errorf("old session after sign-out = %d %s, want a redirect to sign in", res.StatusCode, res.Header.Get("Location"))
		}
		if n := e.count(`SELECT count(*) FROM activity WHERE action = 'console.sign_out'`); n != 1 {
			t.Errorf("%d sign-outs recorded, want 1", n)
		}
	})
}

func strPtr(v any) *string {
	s, _ := v.(string)
	return &s
}

// inputValue returns the value of the input with id on page p, "" when
// there is none.
func inputValue(p formPage, id string) string {
	re := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*\svalue="([^"]*)"`)
	m := re.FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// fieldError returns the message shown next to the input with id.
func fieldError(p formPage, id string) string {
	re := regexp.MustCompile(`<p class="field-error" id="` + regexp.QuoteMeta(id) + `-error">([^<]*)</p>`)
	m := re.FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// The trigger page's forms and the test tool, through one signed-in
// session on one gateway: each change is the API's, with its answers.
func TestConsoleTriggerPage(t *testing.T) {
	e := newEnv(t)
	b := newFormClient(t, e)
	wantRedirect(t, b.signIn(e.token), "/console/")
	const ref = "github.push"
	tp := "/console/triggers/" + ref
	webhook := func() map[string]any {
		return e.mustAdmin(200, "GET", "/api/v1/triggers/"+ref+"/webhooks", nil)["data"].(map[string]any)
	}
	settings := func() map[string]any { return webhook()["settings"].(map[string]any) }

	b.get(tp)
	wantRedirect(t, b.form(tp+"/enable", "back", tp), tp)
	p := b.get(tp)
	if p.status != 200 {
		t.Fatalf("trigger tp = %d:\n%s", p.status, p.body)
	}
	wantSecure(t, "trigger page", p)
	for _, page := range []string{"audit", "events", "destinations"} {
		if link := `href="/console/` + page + `?trigger=` + ref + `"`; !strings.Contains(p.body, link) {
			t.Errorf("the trigger page does not link to its %s (%s)", page, link)
		}
	}
	url0 := webhook()["webhook_url"].(string)
	if got := inputValue(p, "key-"+strconv.Itoa(int(e.mustAdmin(200, "GET", "/api/v1/triggers/"+ref+"/webhooks/keys", nil)["data"].([]any)[0].(map[string]any)["id"].(float64)))); got != url0 {
		t.Errorf("the tp shows the URL %q, want %q", got, url0)
	}
	key0 := url0[strings.LastIndex(url0, "/")+1:]

	t.Run("regenerate", func(t *testing.T) {
		p := b.get(tp + "/regenerate")
		if p.status != 200 || !strings.Contains(p.body, `name="grace_seconds"`) {
			t.Fatalf("confirmation tp = %d:\n%s", p.status, p.body)
		}
		wantSecure(t, "confirmation page", p)
		if p := b.form(tp+"/regenerate", "grace_seconds", "-5"); p.status != 422 || fieldError(p, "grace") == "" {
			t.Errorf("negative grace = %d, error %q; want 422 and the API's message", p.status, fieldError(p, "grace"))
		}
		wantRedirect(t, b.form(tp+"/regenerate", "grace_seconds", ""), tp)
		p = b.get(tp)
		shown := inputValue(p, "flash-url")
		now := webhook()["webhook_url"].(string)
		if shown == "" || shown != now || now == url0 {
			t.Fatalf("new URL shown %q, API says %q, old %q", shown, now, url0)
		}
		if r := e.post(key0, []byte(`{}`), nil); r.status != 404 {
			t.Errorf("old URL after regenerate = %d, want 404", r.status)
		}
		if p := b.get(tp); inputValue(p, "flash-url") != "" {
			t.Errorf("the new URL's message is shown twice")
		}
	})

	t.Run("IP allowlist", func(t *testing.T) {
		b.get(tp)
		p := b.form(tp+"/settings/cidr-add", "cidr", "10.0.0.300/8")
		if p.status != 422 {
			t.Fatalf("invalid CIDR = %d, want 422", p.status)
		}
		if got := fieldError(p, "cidr"); got != `"10.0.0.300/8" is not a valid CIDR` {
			t.Errorf("message next to the field = %q, want the API's", got)
		}
		if got := inputValue(p, "cidr"); got != "10.0.0.300/8" {
			t.Errorf("the field holds %q, want what was typed", got)
		}
		if got := settings()["ip_allowlist"].(map[string]any)["cidrs"].([]any); len(got) != 0 {
			t.Errorf("cidrs after a refused add = %v, want none", got)
		}
		wantRedirect(t, b.form(tp+"/settings/cidr-add", "cidr", "192.0.2.0/24"), tp)
		wantRedirect(t, b.form(tp+"/settings/cidr-add", "cidr", "2001:db8::/32"), tp)
		wantRedirect(t, b.form(tp+"/settings/allowlist", "enabled", "on"), tp)
		al := settings()["ip_allowlist"].(map[string]any)
		if fmt.Sprint(al["cidrs"]) != "[192.0.2.0/24 2001:db8::/32]" || al["enabled"] != true {
			t.Errorf("allowlist = %v", al)
		}
		wantRedirect(t, b.form(tp+"/settings/cidr-remove", "cidr", "192.0.2.0/24"), tp)
		// The last network cannot go while the list is on: the API says so.
		p = b.form(tp+"/settings/cidr-remove", "cidr", "2001:db8::/32")
		if p.status != 422 || !strings.Contains(fieldError(p, "ip-list"), "at least one CIDR") {
			t.Errorf("removing the last network = %d %q", p.status, fieldError(p, "ip-list"))
		}
		wantRedirect(t, b.form(tp+"/settings/allowlist"), tp)
		wantRedirect(t, b.form(tp+"/settings/cidr-remove", "cidr", "2001:db8::/32"), tp)
		if al := settings()["ip_allowlist"].(map[string]any); fmt.Sprint(al["cidrs"]) != "[]" || al["enabled"] != false {
			t.Errorf("allowlist = %v, want empty and off", al)
		}
	})

	var secret string
	t.Run("HMAC secret shown once", func(t *testing.T) {
		b.get(tp)
		wantRedirect(t, b.form(tp+"/settings/hmac", "enabled", "on", "preset", "github", "algorithm", "sha256"), tp)
		wantRedirect(t, b.form(tp+"/settings/secret-generate"), tp)
		p := b.get(tp)
		secret = inputValue(p, "flash-secret")
		if len(secret) < 20 {
			t.Fatalf("no generated secret shown:\n%s", p.body)
		}
		if p := b.get(tp); strings.Contains(p.body, secret) {
			t.Errorf("the secret is shown again on reload")
		}
		h := settings()["hmac"].(map[string]any)
		if h["enabled"] != true || h["secret_set"] != true || h["preset"] != "github" {
			t.Errorf("hmac = %v", h)
		}
		body := []byte(`{"ref":"refs/heads/main","repository":{"full_name":"octo/repo"}}`)
		if r := e.post(webhookKey(e, ref), body, map[string]string{"X-Hub-Signature-256": sign(secret, body)}); r.status != 200 {
			t.Errorf("delivery signed with the shown secret = %d %s", r.status, r.body)
		}
		if strings.Contains(e.logs.String(), secret) {
			t.Errorf("the secret was logged")
		}
		// The API's own message for a bad value, next to its field.
		p = b.form(tp+"/settings/hmac", "enabled", "on", "preset", "github", "algorithm", "md5")
		if p.status != 422 || !strings.Contains(fieldError(p, "hmac-algorithm"), `"md5" is not one of`) {
			t.Errorf("bad algorithm = %d %q", p.status, fieldError(p, "hmac-algorithm"))
		}
	})

	t.Run("limits and mapping", func(t *testing.T) {
		b.get(tp)
		wantRedirect(t, b.form(tp+"/settings/rate-limit", "enabled", "on", "requests", "5", "window_seconds", "10"), tp)
		if rl := settings()["rate_limit"].(map[string]any); rl["requests"] != 5.0 || rl["enabled"] != true {
			t.Errorf("rate limit = %v", rl)
		}
		p := b.form(tp+"/settings/rate-limit", "requests", "many", "window_seconds", "10")
		if p.status != 422 || fieldError(p, "rl-requests") == "" {
			t.Errorf("non-numeric requests = %d %q", p.status, fieldError(p, "rl-requests"))
		}
		wantRedirect(t, b.form(tp+"/settings/size", "payload_size_limit_kb", "64"), tp)
		if n := settings()["payload_size_limit_kb"]; n != 64.0 {
			t.Errorf("size limit = %v", n)
		}
		p = b.form(tp+"/settings/mapping", "payload_mapping", `{"branch": "$.ref[", "x": "$.a"}`)
		if p.status != 422 || fieldError(p, "payload-mapping") == "" || !strings.Contains(p.body, `$.ref[`) {
			t.Errorf("bad JSONPath = %d %q", p.status, fieldError(p, "payload-mapping"))
		}
		wantRedirect(t, b.form(tp+"/settings/mapping", "payload_mapping", `{"branch": "$.ref"}`), tp)
		if m := settings()["payload_mapping"].(map[string]any); m["branch"] != "$.ref" {
			t.Errorf("mapping = %v", m)
		}
		wantRedirect(t, b.form(tp+"/settings/mapping", "payload_mapping", ""), tp)
		if m := settings()["payload_mapping"].(map[string]any); len(m) != 0 {
			t.Errorf("mapping after emptying = %v", m)
		}
		wantRedirect(t, b.form(tp+"/settings/rate-limit", "requests", "60", "window_seconds", "60"), tp)
	})

	t.Run("extra keys", func(t *testing.T) {
		b.get(tp)
		wantRedirect(t, b.form(tp+"/keys", "label", "staging"), tp)
		p := b.get(tp)
		u := inputValue(p, "flash-url")
		if !strings.Contains(u, "/api/v1/webhooks/wh_") {
			t.Fatalf("no URL shown for the new key:\n%s", p.body)
		}
		if p := b.form(tp+"/keys", "label", "staging"); p.status != 422 || !strings.Contains(fieldError(p, "key-label"), "already has this label") {
			t.Errorf("repeated label = %d %q", p.status, fieldError(p, "key-label"))
		}
		var id int64
		for _, k := range e.mustAdmin(200, "GET", "/api/v1/triggers/"+ref+"/webhooks/keys", nil)["data"].([]any) {
			if k := k.(map[string]any); k["label"] == "staging" {
				id = int64(k["id"].(float64))
			}
		}
		rp := b.get(tp + "/keys/" + strconv.FormatInt(id, 10) + "/revoke")
		if rp.status != 200 || !strings.Contains(rp.body, "Revoke staging") {
			t.Fatalf("revoke confirmation = %d", rp.status)
		}
		wantRedirect(t, b.form(tp+"/keys/"+strconv.FormatInt(id, 10)+"/revoke"), tp)
		if r := e.post(u[strings.LastIndex(u, "/")+1:], []byte(`{}`), nil); r.status != 404 {
			t.Errorf("revoked key = %d, want 404", r.status)
		}
	})

	t.Run("test tool", func(t *testing.T) {
		p := b.get(tp + "/test")
		if p.status != 200 || !strings.Contains(p.body, `refs/heads/main`) {
			t.Fatalf("test tool not prefilled with the last event:\n%s", p.body)
		}
		wantSecure(t, "test tool", p)
		body := `{"ref":"refs/heads/test-tool","repository":{"full_name":"octo/repo"}}`
		p = b.form(tp+"/test", "body", body, "headers", "X-GitHub-Event: push", "sign", "on")
		if p.status != 200 {
			t.Fatalf("send = %d:\n%s", p.status, p.body)
		}
		id := regexp.MustCompile(`<code class="event-id">(evt_[^<]+)</code>`).FindStringSubmatch(p.body)
		subject := regexp.MustCompile(`<code class="subject">([^<]+)</code>`).FindStringSubmatch(p.body)
		if id == nil || subject == nil {
			t.Fatalf("no event id or subject:\n%s", p.body)
		}
		if link := `href="/console/events/` + id[1] + `"`; !strings.Contains(p.body, link) {
			t.Errorf("the event id does not link to its page (%s)", link)
		}
		if want := e.cfg.SubjectPrefix + "." + ref; subject[1] != want {
			t.Errorf("subject = %q, want %q", subject[1], want)
		}
		ev := e.mustAdmin(200, "GET", "/api/v1/events/"+id[1], nil)["data"].(map[string]any)
		if ev["payload"].(map[string]any)["ref"] != "refs/heads/test-tool" {
			t.Errorf("stored event = %v", ev)
		}
		eventually(t, 5*time.Second, "the event on NATS", func() bool {
			for _, m := range e.streamMessages(0, 0) {
				if m.Header.Get("Nats-Msg-Id") == id[1] {
					return m.Subject == subject[1]
				}
			}
			return false
		})
		if strings.Contains(p.body, secret) {
			t.Errorf("the test tool shows the secret")
		}
		// Unsigned, the receiver refuses it, and the tool says why.
		p = b.form(tp+"/test", "body", body)
		if p.status != 200 || !strings.Contains(p.body, "bad_signature") || !strings.Contains(p.body, "401") {
			t.Errorf("unsigned send: no 401 bad_signature shown:\n%s", p.body)
		}
		if p := b.form(tp+"/test", "body", body, "headers", "no colon here"); p.status != 422 || fieldError(p, "headers") == "" {
			t.Errorf("bad header line = %d", p.status)
		}
	})

	t.Run("lists filtered by trigger", func(t *testing.T) {
		for _, page := range []string{"audit", "events", "destinations"} {
			p := b.get("/console/" + page + "?trigger=" + ref)
			if p.status != 200 {
				t.Fatalf("%s = %d:\n%s", page, p.status, p.body)
			}
			if want := `<option value="` + ref + `" selected>`; !strings.Contains(p.body, want) {
				t.Errorf("%s filtered by %s does not show the filter (%s)", page, ref, want)
			}
		}
	})

	t.Run("test tool schemes", func(t *testing.T) {
		// Twilio signs the public URL and the form fields.
		const tw = "twilio.sms_received"
		twp := "/console/triggers/" + tw
		b.get("/console/")
		wantRedirect(t, b.form(twp+"/enable"), "/console/")
		b.get(twp)
		wantRedirect(t, b.form(twp+"/settings/secret-generate"), twp)
		p := b.form(twp+"/test", "body", "MessageSid=SM1&AccountSid=AC1&From=%2B15550100&To=%2B15550199&Body=hi",
			"headers", "Content-Type: application/x-www-form-urlencoded", "sign", "on")
		if !strings.Contains(p.body, "Accepted: 200") || !strings.Contains(p.body, "X-Twilio-Signature") {
			t.Errorf("twilio test not accepted:\n%s", p.body)
		}
		// SendGrid's secret is a public key: the tool says it cannot sign,
		// and its example is a batch.
		const sg = "sendgrid.events"
		sgp := "/console/triggers/" + sg
		b.get("/console/")
		wantRedirect(t, b.form(sgp+"/enable"), "/console/")
		p = b.get(sgp + "/test")
		if !strings.Contains(p.body, "cannot sign") || !strings.Contains(p.body, "[\n  {") {
			t.Errorf("sendgrid test tool: no explanation or no batch example:\n%s", p.body)
		}
	})

	t.Run("CSRF on every form", func(t *testing.T) {
		for _, path := range []string{tp + "/settings/cidr-add", tp + "/regenerate", tp + "/keys", tp + "/test", tp + "/settings/secret-generate"} {
			if p := b.post(path, url.Values{"cidr": {"192.0.2.1"}, "label": {"x"}, "body": {"{}"}}); p.status != http.StatusForbidden {
				t.Errorf("POST %s without a CSRF token = %d, want 403", path, p.status)
			}
		}
		if n := len(settings()["ip_allowlist"].(map[string]any)["cidrs"].([]any)); n != 0 {
			t.Errorf("a refused form changed the allowlist")
		}
	})
}

// webhookKey returns trigger ref's primary key.
func webhookKey(e *env, ref string) string {
	e.t.Helper()
	return e.mustAdmin(200, "GET", "/api/v1/triggers/"+ref+"/webhooks", nil)["data"].(map[string]any)["webhook_key"].(string)
}

// value returns the value of the field sel, waiting for it.
func (p *page) value(sel string) string {
	p.t.Helper()
	return run(p, chromedp.Value(chromedp.CSS(sel), chromedp.NodeVisible))
}

// The trigger flows in a real browser, under the console's CSP, on one
// gateway and one tab: toggle, regenerate, an invalid CIDR, a secret shown
// once, the test tool, and a form without its CSRF token.
func TestConsoleTriggersBrowser(t *testing.T) {
	e := newEnv(t)
	p := newPage(t, e.base)
	p.signIn(e.token)
	const ref = "github.push"
	tp := "/console/triggers/" + ref
	p.checkA11y("the triggers list")

	t.Run("toggle", func(t *testing.T) {
		const app = "myapp.deployment_complete"
		ap := "/console/triggers/" + app
		p.open("/console/")
		if status := p.submit(`form[action="` + ap + `/enable"] button`); status != 200 {
			t.Fatalf("enable = %d", status)
		}
		p.waitText(".flash", "Webhook of "+app+" enabled")
		key := webhookKey(e, app)
		if status := p.submit(`form[action="` + ap + `/disable"] button`); status != 200 {
			t.Fatalf("disable = %d", status)
		}
		if r := e.post(key, deployment("1.0"), nil); r.status != 403 {
			t.Errorf("receiver after disabling = %d, want 403", r.status)
		}
		p.submit(`form[action="` + ap + `/enable"] button`)
		if r := e.post(key, deployment("1.1"), nil); r.status != 200 {
			t.Errorf("receiver after enabling = %d %s, want 200", r.status, r.body)
		}
		// The trigger the other checks use.
		p.submit(`form[action="` + tp + `/enable"] button`)
	})

	t.Run("regenerate", func(t *testing.T) {
		old := webhookKey(e, ref)
		p.open(tp)
		p.checkA11y("the trigger page")
		if status := p.navigate(chromedp.Click(chromedp.CSS(`a[href="`+tp+`/regenerate"]`), chromedp.NodeVisible)); status != 200 {
			t.Fatalf("confirmation page = %d", status)
		}
		p.checkA11y("the regenerate confirmation")
		if status := p.submit(`button.danger`); status != 200 {
			t.Fatalf("regenerate = %d", status)
		}
		shown := p.value("#flash-url")
		if !strings.HasSuffix(shown, "/api/v1/webhooks/"+webhookKey(e, ref)) {
			t.Errorf("new URL shown %q, want the new key's", shown)
		}
		if r := e.post(old, []byte(`{}`), nil); r.status != 404 {
			t.Errorf("old URL = %d, want 404", r.status)
		}
	})

	t.Run("invalid CIDR", func(t *testing.T) {
		p.open(tp)
		p.fill("#cidr", "300.1.2.3/8")
		if status := p.submit(`form[action$="/settings/cidr-add"] button`); status != 422 {
			t.Fatalf("invalid CIDR = %d, want 422", status)
		}
		if got := p.text("#cidr-error"); got != `"300.1.2.3/8" is not a valid CIDR` {
			t.Errorf("error next to the field = %q", got)
		}
		if got := run(p, chromedp.Evaluate[string](`document.getElementById("cidr").getAttribute("aria-describedby")`)); got != "cidr-error" {
			t.Errorf("the field is not described by its error: %q", got)
		}
		p.checkA11y("the trigger page with an error")
		al := e.mustAdmin(200, "GET", "/api/v1/triggers/"+ref+"/webhooks", nil)["data"].(map[string]any)["settings"].(map[string]any)["ip_allowlist"].(map[string]any)
		if len(al["cidrs"].([]any)) != 0 {
			t.Errorf("allowlist changed: %v", al)
		}
	})

	t.Run("secret shown once", func(t *testing.T) {
		// Signatures are on without a secret (the pack's default): saving
		// the form makes one, as the API does, and shows it once.
		p.open(tp)
		p.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("hmac-enabled").checked = true`))
		p.do(chromedp.SetValue(chromedp.CSS("#hmac-preset"), "github"))
		p.do(chromedp.SetValue(chromedp.CSS("#hmac-algorithm"), "sha512"))
		if status := p.submit(`form[action$="/settings/hmac"] button`); status != 200 {
			t.Fatalf("save hmac = %d", status)
		}
		var changes string
		if err := e.db.Get(&changes, `SELECT array_to_string(changes, ',') FROM activity WHERE action = 'settings.update' ORDER BY id DESC LIMIT 1`); err != nil {
			t.Fatal(err)
		}
		if changes != "hmac.algorithm,hmac.secret" {
			t.Errorf("saving the form changed %s, want hmac.algorithm and hmac.secret only (defaults stay defaults)", changes)
		}
		secret := p.value("#flash-secret")
		if len(secret) < 20 {
			t.Fatalf("secret shown: %q", secret)
		}
		p.checkA11y("the page with a new secret")
		body := []byte(`{"ref":"refs/heads/main","repository":{"full_name":"octo/repo"}}`)
		if r := e.post(webhookKey(e, ref), body, map[string]string{"X-Hub-Signature-256": sign(secret, body)}); r.status != 200 {
			t.Errorf("delivery signed with the shown secret = %d %s", r.status, r.body)
		}
		p.navigate(chromedp.Reload())
		if p.has("#flash-secret") || strings.Contains(run(p, chromedp.Evaluate[string](`document.documentElement.outerHTML`)), secret) {
			t.Errorf("the secret is shown again after a reload")
		}
	})

	t.Run("test tool", func(t *testing.T) {
		if status := p.open(tp + "/test"); status != 200 {
			t.Fatalf("test tool = %d", status)
		}
		p.checkA11y("the test tool")
		p.fill("#body", `{"ref":"refs/heads/browser","repository":{"full_name":"octo/repo"}}`)
		if status := p.submit(`form[action$="/test"] button[type="submit"]`); status != 200 {
			t.Fatalf("send = %d", status)
		}
		p.waitText(".result h2", "Accepted: 200")
		id := p.text("code.event-id")
		if want := e.cfg.SubjectPrefix + "." + ref; p.text("code.subject") != want {
			t.Errorf("subject = %q, want %q", p.text("code.subject"), want)
		}
		ev := e.mustAdmin(200, "GET", "/api/v1/events/"+id, nil)["data"].(map[string]any)
		if ev["payload"].(map[string]any)["ref"] != "refs/heads/browser" {
			t.Errorf("event %s = %v", id, ev)
		}
		p.checkA11y("the test tool's result")
	})

	t.Run("form without CSRF token", func(t *testing.T) {
		p.open(tp)
		p.do(chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('form[action$="/disable"] input[name="csrf"]').forEach(n => n.remove())`))
		if status := p.submit(`form[action$="/disable"] button`); status != 403 {
			t.Errorf("form without its token = %d, want 403", status)
		}
		if !strings.Contains(p.text("main"), "did not come from this console") {
			t.Errorf("refusal page reads %q", p.text("main"))
		}
		if e.count(`SELECT count(*) FROM triggers WHERE ref = $1 AND webhook_enabled`, ref) != 1 {
			t.Errorf("the refused form disabled the webhook")
		}
	})
}
