package api

import (
	"github.com/labstack/echo/v4"
)

// Register adds every route of the management API, the health and
// readiness probes, /metrics and /api/v1/openapi.json to e. The receiver,
// POST /api/v1/webhooks/:webhook_key, is registered by package receiver.
//
// Every route under /api/v1 but the receiver and the OpenAPI document
// requires a bearer token, checked before anything else, so that an unauthenticated request
// gets 401 even for a path or method that does not exist there.
func (a *API) Register(e *echo.Echo) {
	e.GET("/healthz", a.healthz)
	e.GET("/readyz", a.readyz)
	e.GET("/metrics", a.metricsHandler())
	e.GET("/api/v1/openapi.json", a.openAPIDocument)

	// Group middleware also guards the group's catch-all 404, which Echo
	// registers with it.
	tr := e.Group("/api/v1/triggers", a.auth)
	tr.GET("", a.listTriggers)
	tr.POST("", a.createTrigger)
	tr.GET("/:ref", a.getTrigger)
	tr.DELETE("/:ref", a.deleteTrigger)
	// Both spellings appear in the documents senders and operators follow.
	for _, w := range []string{"/:ref/webhooks", "/:ref/webhook"} {
		tr.GET(w, a.getWebhook)
		tr.PATCH(w, a.patchWebhook)
		tr.POST(w+"/enable", a.enableWebhook)
		tr.POST(w+"/disable", a.disableWebhook)
		tr.POST(w+"/regenerate", a.regenerateKey)
		tr.GET(w+"/log", a.webhookLog)
		tr.GET(w+"/keys", a.listKeys)
		tr.POST(w+"/keys", a.createKey)
		tr.DELETE(w+"/keys/:id", a.revokeKey)
	}
	tr.GET("/:ref/destinations", a.listDestinations)
	tr.POST("/:ref/destinations", a.createDestination)

	ds := e.Group("/api/v1/destinations", a.auth)
	ds.GET("/:id", a.getDestination)
	ds.PATCH("/:id", a.patchDestination)
	ds.DELETE("/:id", a.deleteDestination)
	ds.POST("/:id/rotate-secret", a.rotateDestinationSecret)
	ds.POST("/:id/test", a.testDestination)
	ds.GET("/:id/deliveries", a.listDestinationDeliveries)
	ds.POST("/:id/recover", a.recoverDeliveries)

	dl := e.Group("/api/v1/deliveries", a.auth)
	dl.GET("/:id", a.getDelivery)
	dl.POST("/:id/retry", a.retryDelivery)

	ev := e.Group("/api/v1/events", a.auth)
	ev.GET("", a.listEvents)
	ev.GET("/:id", a.getEvent)
	ev.GET("/:id/deliveries", a.eventDeliveries)
	ev.POST("/replay", a.replayRange)
	ev.POST("/:id/replay", a.replayEvent)

	e.GET("/api/v1/audit", a.listAudit, a.auth)
	e.GET("/api/v1/activity", a.listActivity, a.auth)

	ob := e.Group("/api/v1/outbox", a.auth)
	ob.GET("", a.outboxStatus)
	ob.GET("/set-aside", a.listSetAside)
	ob.POST("/set-aside/:event_id/retry", a.retrySetAside)
}
