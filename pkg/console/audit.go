package console

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// auditPage answers GET /console/audit.
func (h *Console) auditPage(c echo.Context) error {
	return h.render(c, http.StatusOK, "coming", view{Title: "Audit", Section: "audit"})
}
