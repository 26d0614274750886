package console

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// eventsPage answers GET /console/events.
func (h *Console) eventsPage(c echo.Context) error {
	return h.render(c, http.StatusOK, "coming", view{Title: "Events", Section: "events"})
}
