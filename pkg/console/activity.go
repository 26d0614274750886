package console

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/store"
)

func (h *Console) activityRoutes(g *echo.Group) {
	g.GET("/activity", h.activityPage)
}

// activityData is the activity page.
type activityData struct {
	Rows  []store.Activity
	Pager pager
}

// activityPage answers GET /console/activity: every management change,
// from the API, the console or a command, and the token that made it,
// newest first, a page at a time.
func (h *Console) activityPage(c echo.Context) error {
	var d activityData
	api := url.Values{"limit": {strconv.Itoa(pageSize)}}
	cursor := c.QueryParam("cursor")
	if cursor != "" {
		api.Set("cursor", cursor)
	}
	next, err := h.callList(c, "/api/v1/activity", api, &d.Rows)
	if err != nil {
		return err
	}
	d.Pager = newPager("/console/activity", nil, cursor, next)
	return h.render(c, http.StatusOK, "activity", view{Title: "Activity", Section: "activity", Data: d})
}
