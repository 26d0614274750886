// Package console serves inlet's operator console under /console/: server
// rendered pages (html/template, with templates and assets embedded) for
// the triggers and their webhook settings, the audit log, events,
// destinations and the activity log, and a tool that sends a test request
// through the real receiver.
//
// The console holds no rules of its own. Every change, and most reads, is
// a request to the management API served in-process by the same Echo
// instance (see Console.call), as the signed-in token (api.WithCaller): the
// same validation, the same answers, the same activity log. Lists that the
// API would need one request per row for are read from the store, through
// the same methods the API uses.
//
// A session (store.Session) is made by signing in with a bearer token, is
// kept in PostgreSQL so that any instance serves it, lasts 12 hours and
// dies with its token. Every state-changing form carries a CSRF token
// derived from the session; every response carries a Content-Security-Policy
// that allows no inline script or style and no framing. No page renders a
// stored secret; a secret the server generates is shown once, on the page
// after the change that made it.
package console

import (
	"embed"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/inlet-dev/inlet/pkg/store"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// SessionTTL is how long a console session lasts.
const SessionTTL = 12 * time.Hour

// Options configures a Console.
type Options struct {
	Store *store.Store
	// Handler serves the management API and the receiver: the Echo
	// instance the console is registered on.
	Handler http.Handler
	// PublicURL is inlet's public base URL, without a trailing slash;
	// with https, the session cookie is Secure.
	PublicURL string
	// SubjectPrefix is the NATS subject prefix events are published
	// under, shown by the test tool.
	SubjectPrefix string
	Logger        *slog.Logger
}

// Console serves the operator console. It is safe for concurrent use once
// registered.
type Console struct {
	store         *store.Store
	handler       http.Handler
	publicURL     string
	secure        bool
	subjectPrefix string
	log           *slog.Logger
	pages         *pages
	assets        *assets

	// now is the clock of the test tool's signatures; tests replace it.
	now func() time.Time
	// stop ends the audit log's live streams (Close).
	stop shutdown
}

// New returns a Console built from o. It panics if an embedded template
// does not parse, which no released binary does.
func New(o Options) *Console {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Console{
		store:         o.Store,
		handler:       o.Handler,
		publicURL:     strings.TrimSuffix(o.PublicURL, "/"),
		secure:        strings.HasPrefix(strings.ToLower(o.PublicURL), "https://"),
		subjectPrefix: o.SubjectPrefix,
		log:           logger.With("component", "console"),
		now:           time.Now,
	}
	h.assets = loadAssets()
	h.pages = mustParsePages(h.assets)
	return h
}
