package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/lib/pq"
)

// Notification channels.
const (
	// ChannelTriggers carries the id of a trigger whose row or keys changed.
	ChannelTriggers = "inlet_triggers"
)

// Listen delivers notifications on channel to fn until ctx is done. When the
// connection is lost, notifications may have been missed: onReset is called
// after reconnecting (and once after the first connection), so that the
// caller can resynchronise. fn and onReset run on Listen's goroutine.
func Listen(ctx context.Context, dsn, channel string, logger *slog.Logger, fn func(payload string), onReset func()) error {
	l := pq.NewDialListener(Dialer{}, dsn, 100*time.Millisecond, 5*time.Second, func(_ pq.ListenerEventType, err error) {
		if err != nil {
			logger.Warn("notification listener", slog.String("channel", channel), slog.Any("err", err))
		}
	})
	defer l.Close()
	// Listen blocks until a first connection is made; only Close ends it.
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	if err := l.Listen(channel); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("listen %s: %w", channel, err)
	}
	onReset()
	// A ping now and then detects a connection that died silently.
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-l.Notify:
			if n == nil { // reconnected: notifications may have been lost
				onReset()
				continue
			}
			fn(n.Extra)
		case <-ping.C:
			_ = l.Ping() // a failure shows up as a reconnect event
		}
	}
}
