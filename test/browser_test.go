package test

// The browser harness: one headless Chromium per test binary, started on
// first use and closed from TestMain, and a fresh tab with its own cookie
// jar (a browser context) per test. Helpers sign in to a gateway's console,
// navigate, click, fill, wait for text, take screenshots for docs/console
// and run axe-core.

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumHint says what to do when no Chromium is found.
const chromiumHint = "no Chromium for the browser tests: run scripts/ensure-chromium.sh " +
	"(make test does), or set INLET_CHROMIUM to a Chromium or Chrome binary " +
	"(INLET_SKIP_BROWSER=1 skips these tests)"

// Viewport of every tab, and of the screenshots in docs/console.
const (
	viewportWidth  = 1280
	viewportHeight = 800
)

// browserTimeout bounds one step (a navigation, a click, a wait).
const browserTimeout = 20 * time.Second

// axeSource is axe-core, vendored for these tests only; see
// testdata/axe-core/README.
//
//go:embed testdata/axe-core/axe.min.js
var axeSource string

// browser is the one Chromium of this test binary. Its owner is TestMain,
// which calls closeBrowser after every test has run.
var browser struct {
	once   sync.Once
	ctx    context.Context // a chromedp context holding the running browser
	cancel func()          // stops the browser and removes its profile
	err    error
}

// chromiumPath finds the Chromium to run: $INLET_CHROMIUM, else chromium
// or chromium-browser on $PATH.
func chromiumPath() (string, error) {
	if p := os.Getenv("INLET_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("INLET_CHROMIUM=%s is not executable (%w); %s", p, err, chromiumHint)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New(chromiumHint)
}

// sharedBrowser returns the context of the running browser, starting it on
// the first call. Without a Chromium the test fails with the hint of
// ensure-chromium.sh, or is skipped when INLET_SKIP_BROWSER=1.
func sharedBrowser(t *testing.T) context.Context {
	t.Helper()
	if os.Getenv("INLET_SKIP_BROWSER") == "1" {
		t.Skip("INLET_SKIP_BROWSER=1: browser tests skipped")
	}
	browser.once.Do(func() {
		path, err := chromiumPath()
		if err != nil {
			browser.err = err
			return
		}
		dir, err := os.MkdirTemp("", "inlet-chromium-")
		if err != nil {
			browser.err = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path),
			chromedp.UserDataDir(dir),
			chromedp.DisableGPU,
			chromedp.WindowSize(viewportWidth, viewportHeight),
		)
		if os.Geteuid() == 0 {
			opts = append(opts, chromedp.NoSandbox) // Chromium refuses to sandbox as root
		}
		actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, bcancel := chromedp.NewContext(actx)
		stop := func() {
			bcancel()
			acancel()
			os.RemoveAll(dir)
		}
		// The first run starts the browser; it lives until stop.
		if err := chromedp.Do(bctx); err != nil {
			stop()
			browser.err = fmt.Errorf("start %s: %w", path, err)
			return
		}
		browser.ctx, browser.cancel = bctx, stop
	})
	if browser.err != nil {
		t.Fatalf("browser: %v", browser.err)
	}
	return browser.ctx
}

// closeBrowser stops the shared browser, if it was started.
func closeBrowser() {
	if browser.cancel != nil {
		browser.cancel()
	}
}

// page is one browser tab, with cookies of its own, on a server at base.
type page struct {
	t    *testing.T
	ctx  context.Context
	base string

	mu      sync.Mutex
	dialogs []string // messages of the dialogs the page opened, accepted
}

// newPage opens a tab for the server at base (http://host:port), in light
// mode at the screenshots' viewport. It is closed when the test ends.
func newPage(t *testing.T, base string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(sharedBrowser(t), chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The first run creates the tab, whose life is that of ctx: no timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browser: new tab: %v", err)
	}
	p := &page{t: t, ctx: ctx, base: base}
	// Confirmation dialogs (data-confirm) are accepted, as a user who
	// means it would; the listener must not send commands itself, so a
	// goroutine, ended with the tab, does.
	opened := make(chan string, 16)
	if err := chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*cdppage.EventJavascriptDialogOpening); ok {
			select {
			case opened <- d.Message:
			default:
			}
		}
	}); err != nil {
		t.Fatalf("browser: listen: %v", err)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case msg := <-opened:
				p.mu.Lock()
				p.dialogs = append(p.dialogs, msg)
				p.mu.Unlock()
				_, _ = chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
					_, err := cdp.Call(ctx, tg, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: true})
					return chromedp.Void{}, err
				})
			}
		}
	}()
	p.do(
		chromedp.EmulateViewport(viewportWidth, viewportHeight),
		func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}},
			})
			return chromedp.Void{}, err
		},
	)
	return p
}

// dialogsSeen returns the messages of the dialogs the page opened.
func (p *page) dialogsSeen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.dialogs...)
}

// do runs actions in the tab, failing the test on the first error.
func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("browser: %v (at %s)", err, p.location())
	}
}

// run runs one action that returns a value.
func run[T any](p *page, a chromedp.Action[T]) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.t.Fatalf("browser: %v (at %s)", err, p.location())
	}
	return v
}

// location is the tab's URL, for messages.
func (p *page) location() string {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "unknown location"
	}
	return loc
}

// open navigates to path on the server and returns the document's status.
func (p *page) open(path string) int {
	p.t.Helper()
	return p.navigate(chromedp.Navigate(p.base + path))
}

// navigate runs actions that load a new document (a link, a form's
// button), waits for it and returns its HTTP status.
func (p *page) navigate(actions ...chromedp.Action[chromedp.Void]) int {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserTimeout)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, actions...)
	if err != nil {
		p.t.Fatalf("browser: %v (at %s)", err, p.location())
	}
	return int(res.Status)
}

// submit clicks the button sel, which submits a form, and waits for the
// answer's page; it returns its status.
func (p *page) submit(sel string) int {
	p.t.Helper()
	return p.navigate(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// click clicks the element sel without waiting for a new document.
func (p *page) click(sel string) {
	p.t.Helper()
	p.do(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// fill sets the value of the field sel, replacing what it held.
func (p *page) fill(sel, value string) {
	p.t.Helper()
	p.do(chromedp.SetValue(chromedp.CSS(sel), value, chromedp.NodeVisible))
}

// text returns the visible text of the first element sel, waiting for it.
func (p *page) text(sel string) string {
	p.t.Helper()
	return run(p, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
}

// has reports whether an element sel is in the document now.
func (p *page) has(sel string) bool {
	p.t.Helper()
	return run(p, chromedp.Evaluate[bool](fmt.Sprintf("document.querySelector(%s) !== null", jsString(sel))))
}

// waitText waits until the text of an element sel contains want; it polls
// in the page, so it sees changes made by scripts without a reload.
func (p *page) waitText(sel, want string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserTimeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.PollFunction[chromedp.Void](
		`(sel, want) => { const n = document.querySelector(sel); return n !== null && n.innerText.includes(want); }`,
		chromedp.WithPollingArgs(sel, want),
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(browserTimeout),
	))
	if err != nil {
		got := "(no such element)"
		if p.has(sel) {
			got = p.text(sel)
		}
		p.t.Fatalf("browser: waiting for %q in %s at %s: %v; it reads %q", want, sel, p.location(), err, got)
	}
}

// signIn signs in to the console with token and waits for the page after.
func (p *page) signIn(token string) {
	p.t.Helper()
	p.open("/console/signin")
	p.fill(`input[name="token"]`, token)
	if status := p.submit(`form[action$="/console/signin"] button[type="submit"]`); status != http.StatusOK {
		p.t.Fatalf("sign in: status %d at %s: %s", status, p.location(), p.text("main"))
	}
	if loc := p.location(); strings.Contains(loc, "/console/signin") {
		p.t.Fatalf("sign in: still at %s: %s", loc, p.text("main"))
	}
}

// screenshot saves the viewport to docs/console/<name>.png when
// INLET_SCREENSHOTS=1 (make screenshots); otherwise it does nothing.
func (p *page) screenshot(name string) {
	p.t.Helper()
	if os.Getenv("INLET_SCREENSHOTS") != "1" {
		return
	}
	png := run(p, chromedp.CaptureScreenshot())
	dir := filepath.Join("..", "docs", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// axeViolation is one failed axe-core rule, with the elements that fail it.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

func (v axeViolation) String() string {
	return fmt.Sprintf("%s (%s): %s\n    %s", v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n    "))
}

// axeRun runs axe-core's WCAG 2 A and AA and best-practice rules on the
// current document and returns every violation. axe-core is injected
// through the DevTools protocol, which the page's CSP does not govern.
func (p *page) axeRun() []axeViolation {
	p.t.Helper()
	if !run(p, chromedp.Evaluate[bool](`typeof window.axe === "object"`)) {
		p.do(chromedp.Evaluate[chromedp.Void](axeSource))
	}
	return run(p, chromedp.Evaluate[[]axeViolation](`axe.run(document, {runOnly: ["wcag2a", "wcag2aa", "best-practice"]}).then(r =>
		r.violations.map(v => ({
			id: v.id, impact: v.impact || "", help: v.help,
			nodes: v.nodes.map(n => n.target.join(" ") + ": " + (n.failureSummary || "").replace(/\s+/g, " ")),
		})))`, chromedp.EvalAwaitPromise))
}

// checkA11y fails the test on axe-core violations of serious or critical
// impact on the current document, printing them; what names the page.
func (p *page) checkA11y(what string) {
	p.t.Helper()
	var bad []string
	for _, v := range p.axeRun() {
		if v.Impact == "serious" || v.Impact == "critical" {
			bad = append(bad, v.String())
		}
	}
	if len(bad) > 0 {
		p.t.Errorf("accessibility of %s (%s): %d serious or critical violations:\n  %s", what, p.location(), len(bad), strings.Join(bad, "\n  "))
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// harnessCSP is the console's policy, so the harness is proven under it.
const harnessCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// TestBrowserHarness checks the harness itself on small pages served under
// the console's CSP: a form round trip, text changed by a script, axe-core
// passing a clean page and catching a broken one.
func TestBrowserHarness(t *testing.T) {
	mux := http.NewServeMux()
	html := func(w http.ResponseWriter, body string) {
		w.Header().Set("Content-Security-Policy", harnessCSP)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Harness</title>`+
			`<script src="/late.js" defer></script></head><body><main><h1>Harness</h1>%s</main></body></html>`, body)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		html(w, `<form method="post" action="/echo"><label for="q">Say</label> <input id="q" name="q">`+
			`<button type="submit">Send</button></form><p id="late">waiting</p>`)
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		html(w, `<p id="said">You said: `+template.HTMLEscapeString(r.FormValue("q"))+`</p>`)
	})
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) {
		html(w, `<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><input name="nameless">`)
	})
	mux.HandleFunc("GET /late.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", harnessCSP)
		w.Header().Set("Content-Type", "text/javascript")
		io.WriteString(w, `setTimeout(() => { const p = document.getElementById("late"); if (p) p.textContent = "arrived"; }, 200);`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	p := newPage(t, srv.URL)
	if status := p.open("/"); status != http.StatusOK {
		t.Fatalf("open / = %d", status)
	}
	p.waitText("#late", "arrived")
	p.checkA11y("the harness form")
	p.fill("#q", `<b>"hi"</b>`)
	if status := p.submit(`button[type="submit"]`); status != http.StatusOK {
		t.Fatalf("submit = %d", status)
	}
	if got, want := p.text("#said"), `You said: <b>"hi"</b>`; got != want {
		t.Errorf("text(#said) = %q, want %q", got, want)
	}

	p.open("/broken")
	found := map[string]bool{}
	for _, v := range p.axeRun() {
		found[v.ID] = true
	}
	for _, id := range []string{"image-alt", "label"} {
		if !found[id] {
			t.Errorf("axe-core on /broken found %v, want %s among them", found, id)
		}
	}
}
