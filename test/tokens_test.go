package test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/inlet-dev/inlet/pkg/config"
	"github.com/inlet-dev/inlet/pkg/embednats/natstest"
	"github.com/inlet-dev/inlet/pkg/secret"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

// TestAdminTokenRotation: changing INLET_ADMIN_TOKEN and restarting stops
// the previous value, and the token generated at first start, from
// authenticating; a restart never brings back a token an operator revoked.
func TestAdminTokenRotation(t *testing.T) {
	dsn := storetest.NewURL(t)
	ns := natstest.New(t)
	start := func(token string) *env {
		return startEnv(t, dsn, ns.URL, ns.Stream, ns.SubjectPrefix, func(c *config.Config) { c.AdminToken = secret.Value(token) })
	}
	status := func(e *env, token string) int {
		return e.do("GET", "/api/v1/triggers", nil, map[string]string{"Authorization": "Bearer " + token}).status
	}

	e := start("")
	generated := e.token
	if generated == "" || status(e, generated) != http.StatusOK {
		t.Fatalf("the token generated at first start does not work")
	}
	e.stop()

	const first, second = "inlet_first-configured-token-0000000000000", "inlet_second-configured-token-000000000000"
	e = start(first)
	if got := status(e, first); got != http.StatusOK {
		t.Errorf("INLET_ADMIN_TOKEN: %d, want 200", got)
	}
	if got := status(e, generated); got != http.StatusUnauthorized {
		t.Errorf("the generated token once INLET_ADMIN_TOKEN is set: %d, want 401", got)
	}
	e.stop()

	e = start(second)
	if got := status(e, second); got != http.StatusOK {
		t.Errorf("the new INLET_ADMIN_TOKEN: %d, want 200", got)
	}
	if got := status(e, first); got != http.StatusUnauthorized {
		t.Errorf("the previous INLET_ADMIN_TOKEN after a restart: %d, want 401", got)
	}
	// An operator revokes the configured token...
	st := store.New(e.db, nil)
	tok, err := st.CheckToken(context.Background(), second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RevokeToken(context.Background(), tok.ID); err != nil {
		t.Fatal(err)
	}
	if got := status(e, second); got != http.StatusUnauthorized {
		t.Errorf("the revoked token: %d, want 401", got)
	}
	e.stop()
	// ... and a restart with the same value does not revive it.
	e = start(second)
	if got := status(e, second); got != http.StatusUnauthorized {
		t.Errorf("a revoked INLET_ADMIN_TOKEN after a restart: %d, want 401", got)
	}
	if !strings.Contains(e.logs.String(), "INLET_ADMIN_TOKEN holds a token that was revoked") {
		t.Error("the start with a revoked INLET_ADMIN_TOKEN does not say so")
	}
	for _, tok := range []string{first, second, generated} {
		if strings.Contains(e.logs.String(), tok) {
			t.Error("the log shows an admin token")
		}
	}
}
