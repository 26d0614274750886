package store

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// DefaultConnectTimeout bounds making a connection when the DSN names no
// connect_timeout of its own.
const DefaultConnectTimeout = 5 * time.Second

// Settings of the TCP connections to PostgreSQL, so that a database host
// that stops answering (a crash, a partition) fails in-flight statements
// within seconds instead of the kernel's default of about fifteen minutes.
const (
	keepAliveIdle     = 10 * time.Second // before the first probe
	keepAliveInterval = 5 * time.Second
	keepAliveCount    = 3
	userTimeout       = 20 * time.Second // unacknowledged data gives up after this
)

// Open returns a pool of connections to dsn (a URL or key=value DSN, as
// lib/pq takes) that fail fast on a database that stops answering: a
// connect_timeout of DefaultConnectTimeout when dsn has none, and TCP
// keep-alives and TCP_USER_TIMEOUT on every connection. It does not
// connect; callers ping.
func Open(dsn string) (*sqlx.DB, error) {
	c, err := Connector(dsn)
	if err != nil {
		return nil, err
	}
	return sqlx.NewDb(sql.OpenDB(c), "postgres"), nil
}

// Connector returns the lib/pq connector Open uses.
func Connector(dsn string) (*pq.Connector, error) {
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	if cfg.ConnectTimeout == 0 && !strings.Contains(dsn, "connect_timeout") {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	c, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	c.Dialer(Dialer{})
	return c, nil
}

// Dialer makes PostgreSQL connections with keep-alives and a TCP user
// timeout (see Open). It implements lib/pq's Dialer and DialerContext.
type Dialer struct{}

// Dial implements pq.Dialer.
func (d Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialTimeout implements pq.Dialer.
func (d Dialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

// DialContext implements pq.DialerContext.
func (Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	nd := net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount},
		Control:         setUserTimeout,
	}
	return nd.DialContext(ctx, network, address)
}
