package console

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// destinationsPage answers GET /console/destinations.
func (h *Console) destinationsPage(c echo.Context) error {
	return h.render(c, http.StatusOK, "coming", view{Title: "Destinations", Section: "destinations"})
}
