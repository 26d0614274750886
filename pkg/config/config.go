// Package config loads inlet's settings from configs/inlet.yaml, the
// environment (INLET_*, DATABASE_URL, NATS_URL) and command-line flags into one
// validated Config.
//
// Later sources win: a built-in default is replaced by the file, the file by
// the environment, and the environment by a flag that was actually given on
// the command line. The admin token is the exception: it is read only from
// INLET_ADMIN_TOKEN, because a flag shows in ps and a file gets committed.
package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/inlet-dev/inlet/pkg/netguard"
	"github.com/inlet-dev/inlet/pkg/secret"
)

// DefaultFile is the configuration file Load reads when neither the -config
// flag nor INLET_CONFIG names one. Unlike a named file, it may be missing.
const DefaultFile = "configs/inlet.yaml"

// redacted replaces secrets wherever a Config or Secret is printed or logged.
const redacted = "REDACTED"

// Config holds every setting of an inlet process. It is a plain value: copy
// it freely and pass it by value; nothing in it is shared or mutated after
// Load returns.
type Config struct {
	// HTTPAddr is the host:port the HTTP server listens on.
	HTTPAddr string `yaml:"http_addr"`
	// PublicURL is the externally visible base of every webhook_url. Empty
	// means derive one from HTTPAddr; use PublicBaseURL rather than reading
	// this field.
	PublicURL string `yaml:"public_url"`
	// PacksDir is the directory holding trigger packs.
	PacksDir string `yaml:"packs_dir"`
	// DataDir holds the data of the embedded PostgreSQL and NATS servers.
	DataDir string `yaml:"data_dir"`
	// TrustedProxies lists the CIDRs whose X-Forwarded-For header is believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// DestinationAllowCIDRs lists the CIDRs destinations may reach
	// although they are loopback, private, link-local or otherwise
	// refused (see package netguard).
	DestinationAllowCIDRs []string `yaml:"destination_allow_cidrs"`
	// DatabaseURL points at an external PostgreSQL; empty runs an embedded one.
	// It may carry a password: log the Config, never this field on its own.
	DatabaseURL string `yaml:"database_url"`
	// NATSURL points at an external NATS server or cluster; empty runs an
	// embedded one. Like DatabaseURL it may carry credentials.
	NATSURL string `yaml:"nats_url"`
	// AdminToken is the bearer token of the management API, read only from
	// INLET_ADMIN_TOKEN. Empty means the gateway generates one.
	AdminToken secret.Value `yaml:"-"`
	// SecretKey is the keyring that seals secrets at rest, read only from
	// INLET_SECRET_KEY: comma-separated keys, the first sealing, every one
	// opening. Empty means the key kept in DataDir (made at first start).
	SecretKey secret.Value `yaml:"-"`
	// Stream is the JetStream stream events are published to.
	Stream string `yaml:"stream"`
	// SubjectPrefix starts the NATS subject of every published event.
	SubjectPrefix string `yaml:"subject_prefix"`
	// StreamReplicas is how many copies of Stream a NATS cluster keeps when
	// inlet creates it (1 to 5; 3 survives the loss of one server). A stream
	// that already exists keeps its own setting.
	StreamReplicas int `yaml:"stream_replicas"`
	// NATSMaxPayload is the largest message the embedded NATS server
	// takes, in bytes; an external server has its own max_payload.
	NATSMaxPayload int `yaml:"nats_max_payload"`
	// IPRateLimit is the number of receiver requests per minute allowed from
	// one source IP; 0 turns the limit off.
	IPRateLimit int `yaml:"ip_rate_limit"`
	// UnknownKeyLimit is the number of lookups of unknown or revoked webhook
	// keys per minute allowed from one source IP before answering 429; 0
	// turns the limit off.
	UnknownKeyLimit int `yaml:"unknown_key_limit"`
	// AuditFloodRate is how many identical rejections a second one source
	// may have recorded in audit rows of their own (after a burst of twice
	// as many); beyond it they are counted into one row a second.
	AuditFloodRate int `yaml:"audit_flood_rate"`
	// WriteQueue is the length of the bounded write queue; when it is full the
	// receiver sheds load with 503.
	WriteQueue int `yaml:"write_queue"`
	// LogFormat is "json" or "text".
	LogFormat string `yaml:"log_format"`
	// LogLevel is "debug", "info", "warn" or "error".
	LogLevel string `yaml:"log_level"`
	// ShutdownTimeout bounds the graceful stop after SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the
	// timeouts of the http.Server of the same names.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// DBMaxConns caps the PostgreSQL connection pool.
	DBMaxConns int `yaml:"db_max_conns"`
	// PprofAddr, when set, serves net/http/pprof on this host:port (keep it
	// on loopback); empty turns profiling off.
	PprofAddr string `yaml:"pprof_addr"`
	// EventRetention, AuditRetention and DeliveryRetention are how long
	// events, audit records and finished deliveries are kept; 0 keeps
	// them forever. An event waiting to be published or with a pending
	// delivery is kept whatever its age (see package retention).
	EventRetention    Retention `yaml:"event_retention"`
	AuditRetention    Retention `yaml:"audit_retention"`
	DeliveryRetention Retention `yaml:"delivery_retention"`
	// RetentionInterval is the time between two pruning passes.
	RetentionInterval time.Duration `yaml:"retention_interval"`
}

// Default returns the built-in defaults, which configs/inlet.yaml repeats.
func Default() Config {
	return Config{
		HTTPAddr:          ":8080",
		PacksDir:          "packs",
		DataDir:           ".data",
		Stream:            "INLET_EVENTS",
		SubjectPrefix:     "inlet.events",
		StreamReplicas:    1,
		NATSMaxPayload:    8 << 20,
		UnknownKeyLimit:   60,
		WriteQueue:        4096,
		AuditFloodRate:    10,
		LogFormat:         "json",
		LogLevel:          "info",
		ShutdownTimeout:   30 * time.Second,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		DBMaxConns:        20,
		EventRetention:    Retention(90 * Day),
		AuditRetention:    Retention(30 * Day),
		DeliveryRetention: Retention(30 * Day),
		RetentionInterval: 5 * time.Minute,
	}
}

// PublicBaseURL returns the base URL that webhook URLs are built on, without
// a trailing slash: PublicURL when set, otherwise "http://" plus the host and
// port of HTTPAddr, with an empty or unspecified host (":8080", "0.0.0.0:8080",
// "[::]:8080") written as localhost.
func (c Config) PublicBaseURL() string {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	host, port, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil {
		// Validate rejects such an address; this keeps the result usable.
		return "http://localhost"
	}
	if addr, err := netip.ParseAddr(host); host == "" || (err == nil && addr.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// DestinationAllowList returns DestinationAllowCIDRs parsed; Validate has
// checked them.
func (c Config) DestinationAllowList() []netip.Prefix {
	p, _ := netguard.ParseAllowList(strings.Join(c.DestinationAllowCIDRs, ","))
	return p
}

// TrustedProxyPrefixes returns TrustedProxies parsed. Entries that do not
// parse are left out; a Config returned by Load has none.
func (c Config) TrustedProxyPrefixes() []netip.Prefix {
	var prefixes []netip.Prefix
	for _, s := range c.TrustedProxies {
		if p, err := netip.ParsePrefix(s); err == nil {
			prefixes = append(prefixes, p)
		}
	}
	return prefixes
}

// LogValue implements slog.LogValuer. The admin token is redacted, and only
// the scheme, host and path of DatabaseURL and NATSURL are shown, so that
// credentials inside them stay out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("http_addr", c.HTTPAddr),
		slog.String("public_url", c.PublicURL),
		slog.String("packs_dir", c.PacksDir),
		slog.String("data_dir", c.DataDir),
		slog.String("trusted_proxies", strings.Join(c.TrustedProxies, ",")),
		slog.String("destination_allow_cidrs", strings.Join(c.DestinationAllowCIDRs, ",")),
		slog.String("database_url", redactURL(c.DatabaseURL)),
		slog.String("nats_url", redactURL(c.NATSURL)),
		slog.String("admin_token", c.AdminToken.String()),
		slog.String("secret_key", c.SecretKey.String()),
		slog.String("stream", c.Stream),
		slog.String("subject_prefix", c.SubjectPrefix),
		slog.Int("stream_replicas", c.StreamReplicas),
		slog.Int("nats_max_payload", c.NATSMaxPayload),
		slog.Int("ip_rate_limit", c.IPRateLimit),
		slog.Int("unknown_key_limit", c.UnknownKeyLimit),
		slog.Int("write_queue", c.WriteQueue),
		slog.Int("audit_flood_rate", c.AuditFloodRate),
		slog.String("log_format", c.LogFormat),
		slog.String("log_level", c.LogLevel),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
		slog.Duration("read_header_timeout", c.ReadHeaderTimeout),
		slog.Duration("read_timeout", c.ReadTimeout),
		slog.Duration("write_timeout", c.WriteTimeout),
		slog.Duration("idle_timeout", c.IdleTimeout),
		slog.Int("db_max_conns", c.DBMaxConns),
		slog.String("pprof_addr", c.PprofAddr),
		slog.String("event_retention", c.EventRetention.String()),
		slog.String("audit_retention", c.AuditRetention.String()),
		slog.String("delivery_retention", c.DeliveryRetention.String()),
		slog.Duration("retention_interval", c.RetentionInterval),
	)
}

// String returns the settings as space-separated key=value pairs, redacted
// as LogValue does.
func (c Config) String() string {
	var b strings.Builder
	for i, a := range c.LogValue().Group() {
		if i > 0 {
			b.WriteByte(' ')
		}
		v := a.Value.String()
		if v == "" || strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || r == '"' || r == '=' }) {
			v = strconv.Quote(v)
		}
		b.WriteString(a.Key)
		b.WriteByte('=')
		b.WriteString(v)
	}
	return b.String()
}

// Format implements fmt.Formatter: every verb, %+v and %#v included, prints
// String, so formatting a Config never reveals a secret.
func (c Config) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		io.WriteString(f, strconv.Quote(c.String()))
		return
	}
	io.WriteString(f, c.String())
}

// redactURL reduces each comma-separated URL in raw to its scheme, host and
// path. Anything that does not parse as such a URL (a keyword/value
// PostgreSQL DSN, for one) is replaced whole, since it may hold a password.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.Scheme == "" || u.Host == "" {
			parts[i] = redacted
			continue
		}
		parts[i] = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	}
	return strings.Join(parts, ",")
}

// Validate reports every invalid setting of c at once, as errors joined with
// errors.Join; it returns nil when c is usable. Each error names the YAML key
// and the environment variable of the setting.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", label(key), fmt.Sprintf(format, args...)))
	}

	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("http_addr", "%q is not a host:port address such as \":8080\"", c.HTTPAddr)
	}
	if c.PublicURL != "" {
		if msg := checkPublicURL(c.PublicURL); msg != "" {
			bad("public_url", "%s", msg)
		}
	}
	if c.PacksDir == "" {
		bad("packs_dir", "must not be empty")
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	for _, s := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(s); err != nil {
			if addr, err := netip.ParseAddr(s); err == nil {
				bad("trusted_proxies", "%q is an address, not a CIDR; write %s", s, netip.PrefixFrom(addr, addr.BitLen()))
			} else {
				bad("trusted_proxies", "%q is not a CIDR such as \"10.0.0.0/8\"", s)
			}
		}
	}
	if _, err := netguard.ParseAllowList(strings.Join(c.DestinationAllowCIDRs, ",")); err != nil {
		bad("destination_allow_cidrs", "%v", err)
	}

	switch {
	case c.Stream == "":
		bad("stream", "must not be empty")
	case strings.ContainsFunc(c.Stream, unicode.IsSpace) || strings.ContainsAny(c.Stream, ".*>/\\"):
		bad("stream", "%q must not contain whitespace, \".\", \"*\", \">\", \"/\" or \"\\\"", c.Stream)
	}
	switch {
	case c.SubjectPrefix == "":
		bad("subject_prefix", "must not be empty")
	case strings.ContainsFunc(c.SubjectPrefix, unicode.IsSpace) || strings.ContainsAny(c.SubjectPrefix, "*>"):
		bad("subject_prefix", "%q must not contain whitespace or the wildcards \"*\" and \">\"", c.SubjectPrefix)
	case strings.HasPrefix(c.SubjectPrefix, ".") || strings.HasSuffix(c.SubjectPrefix, ".") || strings.Contains(c.SubjectPrefix, ".."):
		bad("subject_prefix", "%q has an empty token; separate non-empty tokens with single dots", c.SubjectPrefix)
	}

	// JetStream's own limit: a stream has at most five replicas.
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		bad("stream_replicas", "must be between 1 and 5, got %d", c.StreamReplicas)
	}
	if c.NATSMaxPayload < 1<<10 || c.NATSMaxPayload > 64<<20 {
		bad("nats_max_payload", "must be between 1024 and 67108864 bytes (64 MiB, the NATS limit), got %d", c.NATSMaxPayload)
	}
	if c.SecretKey != "" {
		if _, err := secret.ParseKeyring(string(c.SecretKey)); err != nil {
			errs = append(errs, fmt.Errorf("INLET_SECRET_KEY: %w", err))
		}
	}

	nonNegative := []struct {
		key string
		n   int
	}{
		{"ip_rate_limit", c.IPRateLimit},
		{"unknown_key_limit", c.UnknownKeyLimit},
	}
	for _, s := range nonNegative {
		if s.n < 0 {
			bad(s.key, "must not be negative, got %d", s.n)
		}
	}
	positive := []struct {
		key string
		n   int
	}{
		{"write_queue", c.WriteQueue},
		{"audit_flood_rate", c.AuditFloodRate},
		{"db_max_conns", c.DBMaxConns},
	}
	for _, s := range positive {
		if s.n <= 0 {
			bad(s.key, "must be greater than 0, got %d", s.n)
		}
	}
	durations := []struct {
		key string
		d   time.Duration
	}{
		{"shutdown_timeout", c.ShutdownTimeout},
		{"read_header_timeout", c.ReadHeaderTimeout},
		{"read_timeout", c.ReadTimeout},
		{"write_timeout", c.WriteTimeout},
		{"idle_timeout", c.IdleTimeout},
		{"retention_interval", c.RetentionInterval},
	}
	for _, s := range durations {
		if s.d <= 0 {
			bad(s.key, "must be greater than 0, got %s", s.d)
		}
	}

	retentions := []struct {
		key string
		r   Retention
	}{
		{"event_retention", c.EventRetention},
		{"audit_retention", c.AuditRetention},
		{"delivery_retention", c.DeliveryRetention},
	}
	for _, s := range retentions {
		// Below a minute is a slip of the unit ("90s" for "90d"), not a
		// wish to delete rows as they arrive.
		if s.r < 0 || (s.r > 0 && s.r.Duration() < time.Minute) {
			bad(s.key, "must be 0 (forever) or at least 1m, got %s", s.r)
		}
	}

	switch c.LogFormat {
	case "json", "text":
	default:
		bad("log_format", "%q is not one of json, text", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	return errors.Join(errs...)
}

// checkPublicURL returns why raw cannot be the base of webhook URLs, or "".
func checkPublicURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not a URL", raw)
	case u.User != nil:
		// Not echoed: the value holds credentials.
		return "must not contain credentials"
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("%q is not an absolute http or https URL", raw)
	case u.Host == "":
		return fmt.Sprintf("%q has no host", raw)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return fmt.Sprintf("%q must not have a query or fragment", raw)
	}
	return ""
}

// label names a setting in error messages by its YAML key and variable.
func label(key string) string {
	for _, s := range settings() {
		if s.key == key {
			return fmt.Sprintf("%s (%s)", key, s.env)
		}
	}
	return key
}
