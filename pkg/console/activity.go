package console

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// activityPage answers GET /console/activity.
func (h *Console) activityPage(c echo.Context) error {
	return h.render(c, http.StatusOK, "coming", view{Title: "Activity", Section: "activity"})
}
