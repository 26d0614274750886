package test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// TestConsole drives the console in a real browser against one gateway:
// sign-in, the live audit log, events and replay, a failed delivery
// retried, the destination's test button, sign-out; the security headers
// of every page and asset; and axe-core on every main page. With
// INLET_SCREENSHOTS=1 (make screenshots) it also refreshes docs/console.
func TestConsole(t *testing.T) {
	e := newEnv(t, allowLoopback)
	const ref = "myapp.deployment_complete"
	key := e.enable(ref)
	// A destination that fails its first request and answers the rest.
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if calls.Add(1) == 1 {
			http.Error(w, "down for a moment", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer flaky.Close()
	dstID := e.mustAdmin(201, "POST", "/api/v1/triggers/"+ref+"/destinations", map[string]any{
		"name": "deploy-bot", "url": flaky.URL + "/hooks/inlet", "retry_schedule_seconds": []int{},
		"headers": map[string]any{"Authorization": "Bearer header-value-never-shown"},
	})["data"].(map[string]any)["id"].(string)

	p := newPage(t, e.base)
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, func(t *testing.T) {
			defer func(parent *testing.T) { p.t = parent }(p.t)
			p.t = t
			f(t)
		}) {
			t.FailNow() // later steps build on this one
		}
	}

	step("sign in", func(t *testing.T) {
		p.open("/console/audit")
		if loc := p.location(); !strings.Contains(loc, "/console/signin?next=%2Fconsole%2Faudit") {
			t.Fatalf("signed out, /console/audit went to %s, want the sign-in page", loc)
		}
		p.checkA11y("the sign-in page")
		for name, tok := range map[string]string{
			"wrong":        "inlet_not-a-token",
			"never issued": store.TokenPrefix + trigger.RandomString(store.TokenLen-len(store.TokenPrefix)),
		} {
			p.fill("#token", tok)
			if status := p.submit(`form[action="/console/signin"] button[type="submit"]`); status != http.StatusUnauthorized {
				t.Errorf("%s token: status %d, want 401", name, status)
			}
			if got := p.text("#token-error"); !strings.Contains(got, "does not sign in") {
				t.Errorf("%s token: error %q", name, got)
			}
		}
		p.fill("#token", e.token)
		p.submit(`form[action="/console/signin"] button[type="submit"]`)
		// Back to the page asked for.
		if loc := p.location(); !strings.HasSuffix(loc, "/console/audit") {
			t.Fatalf("after sign-in at %s, want /console/audit", loc)
		}
	})

	var evID string
	step("live audit log", func(t *testing.T) {
		p.waitText("#live-status", "Live")
		// A mark that a reload would erase.
		p.do(chromedp.Evaluate[chromedp.Void](`window.inletMark = "kept"`))
		r := e.post(key, deployment("2.4.0"), nil)
		if r.status != http.StatusOK {
			t.Fatalf("webhook = %d %s", r.status, r.body)
		}
		evID = r.json["data"].(map[string]any)["event_id"].(string)
		p.waitText("table.audit tbody", evID)
		if r := e.post(key, []byte(`{"service":`), nil); r.status != http.StatusBadRequest {
			t.Fatalf("bad webhook = %d %s", r.status, r.body)
		}
		p.waitText("table.audit tbody tr:first-child", "invalid_payload")
		if got := run(p, chromedp.Evaluate[string](`window.inletMark || ""`)); got != "kept" {
			t.Errorf("the page was reloaded (mark %q): rows must arrive live", got)
		}
		if got := p.text("table.audit tbody tr:nth-child(2)"); !strings.Contains(got, ref) || !strings.Contains(got, "accepted") {
			t.Errorf("accepted row reads %q", got)
		}
		p.checkA11y("the audit log")
		p.screenshot("audit")

		// The outcome filter, without script's help.
		p.open("/console/audit?outcome=invalid_payload")
		if got := p.text("table.audit tbody"); !strings.Contains(got, "invalid_payload") || strings.Contains(got, evID) {
			t.Errorf("audit filtered by invalid_payload reads %q", got)
		}
	})

	step("event and replay", func(t *testing.T) {
		p.open("/console/events")
		p.waitText("table.events", evID)
		p.checkA11y("the events list")
		p.open("/console/events/" + evID)
		if got := p.text("pre.json"); !strings.Contains(got, "\n  \"version\": \"2.4.0\"") {
			t.Errorf("payload reads %q, want it pretty-printed", got)
		}
		// The flaky destination failed the event's only attempt.
		p.waitReload("/console/events/"+evID, "table.deliveries", "failed")
		p.checkA11y("an event")
		p.screenshot("event")

		if status := p.submit(`form[action$="/replay"] button`); status != http.StatusOK {
			t.Fatalf("replay: status %d", status)
		}
		if d := p.dialogsSeen(); len(d) == 0 || !strings.Contains(d[len(d)-1], "Replay") {
			t.Errorf("no confirmation before the replay (dialogs %q)", d)
		}
		loc := p.location()
		if strings.HasSuffix(loc, evID) || !strings.Contains(loc, "/console/events/evt_") {
			t.Fatalf("after replay at %s, want the new event's page", loc)
		}
		if got := p.text(".flash"); !strings.Contains(got, "Replayed "+evID) {
			t.Errorf("flash after replay = %q", got)
		}
		if got := p.text("main"); !strings.Contains(got, "Replay of") || !strings.Contains(got, evID) {
			t.Errorf("the new event does not name the one it replays:\n%s", got)
		}
		newID := loc[strings.LastIndex(loc, "/")+1:]
		if n := e.count(`SELECT count(*) FROM events WHERE id = $1 AND source = 'replay'`, newID); n != 1 {
			t.Errorf("replayed event %s stored %d times", newID, n)
		}
	})

	step("retry a failed delivery", func(t *testing.T) {
		dlv := e.mustAdmin(200, "GET", "/api/v1/events/"+evID+"/deliveries", nil)["data"].([]any)[0].(map[string]any)
		dlvID := dlv["id"].(string)
		if dlv["status"] != "failed" {
			t.Fatalf("delivery %s is %v, want failed", dlvID, dlv["status"])
		}
		p.open("/console/destinations/" + dstID + "?status=failed")
		if got := p.text("main"); strings.Contains(got, "header-value-never-shown") || !strings.Contains(got, "Authorization") {
			t.Errorf("destination page shows a header's value, or not its name:\n%s", got)
		}
		p.checkA11y("a destination")
		if status := p.submit(`tr[id="` + dlvID + `"] form[action$="/retry"] button`); status != http.StatusOK {
			t.Fatalf("retry: status %d", status)
		}
		if got := p.text(".flash"); !strings.Contains(got, "queued again") {
			t.Errorf("flash after retry = %q", got)
		}
		p.waitReload("/console/destinations/"+dstID, `tr[id="`+dlvID+`"]`, "succeeded")
		if n := e.count(`SELECT count(*) FROM activity WHERE action = 'delivery.retry'`); n != 1 {
			t.Errorf("%d retries in the activity log, want 1", n)
		}
		p.screenshot("destination")
	})

	step("destination test and switch", func(t *testing.T) {
		p.open("/console/destinations/" + dstID)
		if status := p.submit(`form[action$="/test"] button`); status != http.StatusOK {
			t.Fatalf("test: status %d: %s", status, p.text("main"))
		}
		if got := p.text(".flash"); !strings.Contains(got, "Succeeded") || !strings.Contains(got, "HTTP 200") {
			t.Errorf("flash after test = %q", got)
		}
		p.submit(`form[action$="/disable"] button`)
		if got := p.text(".flash"); !strings.Contains(got, "disabled") {
			t.Errorf("flash after disable = %q", got)
		}
		d := e.mustAdmin(200, "GET", "/api/v1/destinations/"+dstID, nil)["data"].(map[string]any)
		if d["enabled"] != false {
			t.Errorf("destination enabled = %v after disable", d["enabled"])
		}
		p.submit(`form[action$="/enable"] button`)
		p.open("/console/destinations")
		if got := p.text("table.destinations"); !strings.Contains(got, "deploy-bot") || !strings.Contains(got, "Enabled") {
			t.Errorf("destinations list reads %q", got)
		}
		p.checkA11y("the destinations list")
	})

	step("activity", func(t *testing.T) {
		p.open("/console/activity")
		got := p.text("table.activity")
		for _, want := range []string{"destination.create", "event.replay", "delivery.retry", "destination.update"} {
			if !strings.Contains(got, want) {
				t.Errorf("activity lacks %s:\n%s", want, got)
			}
		}
		p.checkA11y("the activity log")
	})

	step("triggers", func(t *testing.T) {
		p.open("/console/")
		p.waitText("table.triggers", ref)
		p.checkA11y("the triggers list")
		p.screenshot("triggers")
		p.openOwn(t, "/console/triggers/"+ref)
		p.checkA11y("a trigger")
		p.screenshot("trigger")
		p.openOwn(t, "/console/triggers/"+ref+"/test")
		p.checkA11y("the test tool")
		if p.has(`form[action$="/test"] button[type="submit"]`) {
			p.submit(`form[action$="/test"] button[type="submit"]`)
			p.checkA11y("the test tool's result")
			p.screenshot("testtool")
		}
	})

	step("security headers", func(t *testing.T) {
		b := newFormClient(t, e)
		wantRedirect(t, b.signIn(e.token), "/console/")
		pages := []string{
			"/console/signin", "/console/", "/console/triggers/" + ref, "/console/triggers/" + ref + "/test",
			"/console/audit", "/console/audit?outcome=accepted&trigger=" + ref, "/console/events",
			"/console/events?trigger=" + ref, "/console/events/" + evID, "/console/destinations",
			"/console/destinations/" + dstID, "/console/activity", "/console/nothing-here",
		}
		for _, path := range pages {
			wantSecure(t, path, b.get(path))
		}
		for _, name := range []string{"console.css", "console.js", "pages.css", "live.js"} {
			r := b.get("/console/static/" + name)
			if r.status != http.StatusOK {
				t.Errorf("%s = %d", name, r.status)
			}
			wantSecure(t, name, r)
		}
		// The live stream's answer too; it is cut once its headers are in.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/console/audit/stream?after=0", nil)
		res, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if ct := res.Header.Get("Content-Type"); res.StatusCode != 200 || !strings.HasPrefix(ct, "text/event-stream") {
			t.Errorf("audit stream = %d %s", res.StatusCode, ct)
		}
		wantSecure(t, "audit stream", formPage{status: res.StatusCode, header: res.Header})
	})

	step("sign out", func(t *testing.T) {
		p.open("/console/")
		cookie := p.sessionCookie()
		if cookie == "" {
			t.Fatal("no session cookie in the browser")
		}
		p.submit(`form[action="/console/signout"] button`)
		if loc := p.location(); !strings.Contains(loc, "/console/signin") {
			t.Errorf("after sign-out at %s", loc)
		}
		p.open("/console/events")
		if loc := p.location(); !strings.Contains(loc, "/console/signin") {
			t.Errorf("signed out, /console/events is at %s", loc)
		}
		// The old cookie, sent again, is refused.
		req, _ := http.NewRequest(http.MethodGet, e.base+"/console/events", nil)
		req.AddCookie(&http.Cookie{Name: "inlet_session", Value: cookie})
		res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/console/signin") {
			t.Errorf("the signed-out session's cookie: %d to %q, want 303 to the sign-in page", res.StatusCode, res.Header.Get("Location"))
		}
	})
}

// waitReload opens path again and again until the text of sel contains
// want: for what the server does in the background, on a page that does
// not update itself.
func (p *page) waitReload(path, sel, want string) {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		p.open(path)
		if p.has(sel) && strings.Contains(p.text(sel), want) {
			return
		}
		if time.Now().After(deadline) {
			got := "(no such element)"
			if p.has(sel) {
				got = p.text(sel)
			}
			p.t.Fatalf("%s: %s never read %q; it reads %q", path, sel, want, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// openOwn opens a page of the trigger pages, failing unless it answers 200.
func (p *page) openOwn(t *testing.T, path string) {
	t.Helper()
	if status := p.open(path); status != http.StatusOK {
		t.Fatalf("%s = %d: %s", path, status, p.text("main"))
	}
}

// sessionCookie is the value of the browser's console session cookie.
func (p *page) sessionCookie() string {
	p.t.Helper()
	cookies := run(p, func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{p.base + "/console/"}})
		if err != nil {
			return nil, err
		}
		return res.Cookies, nil
	})
	for _, c := range cookies {
		if c.Name == "inlet_session" {
			return c.Value
		}
	}
	return ""
}

// The audit log's live stream over plain HTTP: a new request arrives as an
// event holding its row; sign-out ends the stream; so does the server's
// shutdown, which does not wait for the streams it ends.
func TestConsoleAuditStream(t *testing.T) {
	e := newEnv(t)
	key := e.enable("myapp.deployment_complete")
	b := newFormClient(t, e)
	wantRedirect(t, b.signIn(e.token), "/console/")

	open := func(after string) (*bufio.Reader, func()) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/console/audit/stream?outcome=accepted&after="+after, nil)
		res, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("stream = %d", res.StatusCode)
		}
		return bufio.NewReader(res.Body), func() { cancel(); res.Body.Close() }
	}
	// next reads the stream's next event, or io.EOF when it ends.
	next := func(r *bufio.Reader) (id, name, data string, err error) {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return "", "", "", err
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "" && name != "":
				return id, name, data, nil
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "event: "):
				name = line[7:]
			case strings.HasPrefix(line, "data: "):
				data += line[6:] + "\n"
			}
		}
	}

	r, stop := open("0")
	defer stop()
	if res := e.post(key, []byte(`{"service":`), nil); res.status != http.StatusBadRequest {
		t.Fatalf("bad webhook = %d", res.status)
	}
	res := e.post(key, deployment("3.0.0"), nil)
	evID := res.json["data"].(map[string]any)["event_id"].(string)
	id, name, data, err := next(r)
	if err != nil {
		t.Fatal(err)
	}
	// The refused request is filtered out; the accepted one is its row.
	if name != "audit" || !strings.HasPrefix(data, `<tr id="audit-`+id+`"`) || !strings.Contains(data, evID) || strings.Contains(data, "invalid_payload") {
		t.Errorf("event %s %q:\n%s", id, name, data)
	}

	// Sign-out ends the stream within its session check.
	b.get("/console/")
	wantRedirect(t, b.form("/console/signout"), "/console/signin")
	ended := make(chan error, 1)
	go func() { _, _, _, err := next(r); ended <- err }()
	select {
	case err := <-ended:
		if err != io.EOF {
			t.Errorf("after sign-out the stream ended with %v, want EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its session")
	}

	// A stream does not hold the server's shutdown up.
	wantRedirect(t, b.signIn(e.token), "/console/")
	r2, stop2 := open("0")
	defer stop2()
	go func() {
		for {
			if _, _, _, err := next(r2); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	e.stop()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown took %v with a stream open", d)
	}
}
