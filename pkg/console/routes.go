package console

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// contentSecurityPolicy allows scripts, styles, images and connections
// from the console itself only, nothing inline, and no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Register adds every console route to e, under /console. Every answer,
// an error, a redirect or a static file too, carries the security
// headers; every page but sign-in requires a session.
func (h *Console) Register(e *echo.Echo) {
	// Set before routing, so that the answers Echo makes itself (405)
	// carry them too.
	e.Pre(withSecurityHeaders)
	e.GET("/console", func(c echo.Context) error {
		return c.Redirect(http.StatusMovedPermanently, "/console/")
	})

	// Group middleware also guards the group's catch-all 404.
	g := e.Group("/console", h.errorPages)
	g.GET("/static/*", h.static)
	g.GET("/signin", h.signInPage)
	g.POST("/signin", h.signIn)

	s := g.Group("", h.requireSession)
	s.POST("/signout", h.signOut)
	s.GET("/", h.triggersPage)
	s.POST("/triggers/:ref/enable", h.enableWebhook)
	s.POST("/triggers/:ref/disable", h.disableWebhook)
	s.GET("/triggers/:ref", h.triggerPage)
	s.POST("/triggers/:ref/settings/:section", h.saveSettings)
	s.GET("/triggers/:ref/regenerate", h.regeneratePage)
	s.POST("/triggers/:ref/regenerate", h.regenerate)
	s.POST("/triggers/:ref/keys", h.createKey)
	s.GET("/triggers/:ref/keys/:id/revoke", h.revokeKeyPage)
	s.POST("/triggers/:ref/keys/:id/revoke", h.revokeKey)
	s.GET("/triggers/:ref/test", h.testPage)
	s.POST("/triggers/:ref/test", h.sendTest)

	h.auditRoutes(s)
	h.eventRoutes(s)
	h.destinationRoutes(s)
	h.activityRoutes(s)
}

// withSecurityHeaders sets the security headers of every request under
// /console before anything answers it.
func withSecurityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if p := c.Request().URL.Path; p == "/console" || strings.HasPrefix(p, "/console/") {
			securityHeaders(c)
		}
		return next(c)
	}
}

func securityHeaders(c echo.Context) {
	hdr := c.Response().Header()
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "same-origin")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	// Pages show keys and settings: no cache keeps them. Static files
	// override this.
	hdr.Set("Cache-Control", "no-store")
}
