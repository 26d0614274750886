package embednats

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
)

var _ server.Logger = (*slogAdapter)(nil)

// slogAdapter implements nats-server's Logger on top of slog. Unlike the
// server's own loggers, Fatalf does not exit the process: the message is
// logged at Error and kept, so that Start can return it as an error.
type slogAdapter struct {
	logger *slog.Logger

	mu        sync.Mutex
	firstFail string
}

func (a *slogAdapter) log(level slog.Level, format string, v []any) {
	if !a.logger.Enabled(context.Background(), level) {
		return
	}
	a.logger.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// Noticef logs at Info.
func (a *slogAdapter) Noticef(format string, v ...any) { a.log(slog.LevelInfo, format, v) }

// Warnf logs at Warn.
func (a *slogAdapter) Warnf(format string, v ...any) { a.log(slog.LevelWarn, format, v) }

// Errorf logs at Error.
func (a *slogAdapter) Errorf(format string, v ...any) { a.log(slog.LevelError, format, v) }

// Fatalf logs at Error and remembers the first such message.
func (a *slogAdapter) Fatalf(format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	a.mu.Lock()
	if a.firstFail == "" {
		a.firstFail = msg
	}
	a.mu.Unlock()
	a.logger.Error(msg)
}

// Debugf logs at Debug.
func (a *slogAdapter) Debugf(format string, v ...any) { a.log(slog.LevelDebug, format, v) }

// Tracef logs at Debug. Start keeps tracing off; see Start.
func (a *slogAdapter) Tracef(format string, v ...any) { a.log(slog.LevelDebug, format, v) }

// fatal returns the first Fatalf message, or "".
func (a *slogAdapter) fatal() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.firstFail
}
