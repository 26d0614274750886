package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// env returns a getenv backed by m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// testKey is a valid INLET_SECRET_KEY: 32 bytes in base64url.
const testKey = "dGVzdC1rZXktb2YtZXhhY3RseS10aGlydHktdHdvISE"

func TestLoadPrecedence(t *testing.T) {
	tests := []struct {
		name string
		file string // written to inlet.yaml and passed with -config when non-empty
		env  map[string]string
		args []string
		want func(c *Config)
	}{
		{
			name: "defaults only",
			want: func(c *Config) {},
		},
		{
			name: "file over default",
			file: "http_addr: \":7000\"\npacks_dir: /srv/packs\nread_timeout: 1m\nstream_replicas: 3\ntrusted_proxies: [10.0.0.0/8, \"::1/128\"]\n",
			want: func(c *Config) {
				c.HTTPAddr = ":7000"
				c.PacksDir = "/srv/packs"
				c.ReadTimeout = time.Minute
				c.StreamReplicas = 3
				c.TrustedProxies = []string{"10.0.0.0/8", "::1/128"}
			},
		},
		{
			name: "env over file",
			file: "http_addr: \":7000\"\nwrite_queue: 10\nstream_replicas: 5\n",
			env:  map[string]string{"INLET_HTTP_ADDR": ":7001", "INLET_WRITE_QUEUE": "20", "INLET_STREAM_REPLICAS": "3"},
			want: func(c *Config) { c.HTTPAddr = ":7001"; c.WriteQueue = 20; c.StreamReplicas = 3 },
		},
		{
			name: "flag over env over file",
			file: "http_addr: \":7000\"\n",
			env:  map[string]string{"INLET_HTTP_ADDR": ":7001"},
			args: []string{"-http-addr", ":7002"},
			want: func(c *Config) { c.HTTPAddr = ":7002" },
		},
		{
			name: "unset flag does not override env",
			file: "data_dir: /file\n",
			env:  map[string]string{"INLET_HTTP_ADDR": ":7001", "INLET_DATA_DIR": "/env"},
			args: []string{"-packs-dir", "/flag/packs"},
			want: func(c *Config) { c.HTTPAddr = ":7001"; c.DataDir = "/env"; c.PacksDir = "/flag/packs" },
		},
		{
			name: "flag set to empty overrides env",
			env:  map[string]string{"INLET_PUBLIC_URL": "https://env.example.com", "INLET_TRUSTED_PROXIES": "10.0.0.0/8"},
			args: []string{"-public-url=", "-trusted-proxies="},
			want: func(c *Config) {},
		},
		{
			name: "empty env value leaves the file value",
			file: "database_url: postgres://db/inlet\n",
			env:  map[string]string{"DATABASE_URL": ""},
			want: func(c *Config) { c.DatabaseURL = "postgres://db/inlet" },
		},
		{
			name: "every environment variable",
			env: map[string]string{
				"INLET_HTTP_ADDR":           "127.0.0.1:9000",
				"INLET_PUBLIC_URL":          "https://hooks.example.com/",
				"INLET_PACKS_DIR":           "p",
				"INLET_DATA_DIR":            "d",
				"INLET_TRUSTED_PROXIES":     " 10.0.0.0/8, ,192.168.0.0/16 ",
				"DATABASE_URL":              "postgres://db/inlet",
				"NATS_URL":                  "nats://nats:4222",
				"INLET_ADMIN_TOKEN":         "tok",
				"INLET_STREAM":              "EVENTS",
				"INLET_SUBJECT_PREFIX":      "hooks.in",
				"INLET_STREAM_REPLICAS":     "3",
				"INLET_NATS_MAX_PAYLOAD":    "65536",
				"INLET_SECRET_KEY":          testKey,
				"INLET_IP_RATE_LIMIT":       "600",
				"INLET_UNKNOWN_KEY_LIMIT":   "0",
				"INLET_WRITE_QUEUE":         "8",
				"INLET_AUDIT_FLOOD_RATE":    "25",
				"INLET_LOG_FORMAT":          "text",
				"INLET_LOG_LEVEL":           "debug",
				"INLET_SHUTDOWN_TIMEOUT":    "1m30s",
				"INLET_READ_HEADER_TIMEOUT": "1s",
				"INLET_READ_TIMEOUT":        "2s",
				"INLET_WRITE_TIMEOUT":       "3s",
				"INLET_IDLE_TIMEOUT":        "4s",
				"INLET_DB_MAX_CONNS":        "5",
				"INLET_EVENT_RETENTION":     "7d",
				"INLET_AUDIT_RETENTION":     "36h",
				"INLET_DELIVERY_RETENTION":  "0",
				"INLET_RETENTION_INTERVAL":  "1h",
			},
			want: func(c *Config) {
				*c = Config{
					HTTPAddr:          "127.0.0.1:9000",
					PublicURL:         "https://hooks.example.com/",
					PacksDir:          "p",
					DataDir:           "d",
					TrustedProxies:    []string{"10.0.0.0/8", "192.168.0.0/16"},
					DatabaseURL:       "postgres://db/inlet",
					NATSURL:           "nats://nats:4222",
					AdminToken:        "tok",
					Stream:            "EVENTS",
					SubjectPrefix:     "hooks.in",
					StreamReplicas:    3,
					NATSMaxPayload:    65536,
					SecretKey:         testKey,
					IPRateLimit:       600,
					UnknownKeyLimit:   0,
					WriteQueue:        8,
					AuditFloodRate:    25,
					LogFormat:         "text",
					LogLevel:          "debug",
					ShutdownTimeout:   90 * time.Second,
					ReadHeaderTimeout: time.Second,
					ReadTimeout:       2 * time.Second,
					WriteTimeout:      3 * time.Second,
					IdleTimeout:       4 * time.Second,
					DBMaxConns:        5,
					EventRetention:    Retention(7 * Day),
					AuditRetention:    Retention(36 * time.Hour),
					RetentionInterval: time.Hour,
				}
			},
		},
		{
			name: "retentions from the file, in days, a duration and forever",
			file: "event_retention: 365d\naudit_retention: 720h\ndelivery_retention: 0\n",
			want: func(c *Config) {
				c.EventRetention = Retention(365 * Day)
				c.AuditRetention = Retention(30 * Day)
				c.DeliveryRetention = 0
			},
		},
		{
			name: "every flag",
			args: []string{
				"-http-addr=:1", "-public-url=http://x.example", "-packs-dir=p", "-data-dir=d",
				"-trusted-proxies=10.0.0.0/8,fd00::/8", "-database-url=postgres://db/x", "-nats-url=nats://n:4222",
			},
			want: func(c *Config) {
				c.HTTPAddr = ":1"
				c.PublicURL = "http://x.example"
				c.PacksDir = "p"
				c.DataDir = "d"
				c.TrustedProxies = []string{"10.0.0.0/8", "fd00::/8"}
				c.DatabaseURL = "postgres://db/x"
				c.NATSURL = "nats://n:4222"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			args := tt.args
			if tt.file != "" {
				args = append([]string{"-config", writeFile(t, dir, "inlet.yaml", tt.file)}, args...)
			}
			got, err := Load(args, env(tt.env))
			if err != nil {
				t.Fatalf("Load(%q) error: %v", args, err)
			}
			want := Default()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load(%q) =\n%#v\nwant\n%#v", args, got, want)
			}
			if got.AdminToken != want.AdminToken {
				t.Errorf("Load(%q).AdminToken differs from the want", args)
			}
		})
	}
}

func TestLoadFileSelection(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // HTTPAddr, which each file sets differently
	}{
		{name: "default file when present", want: ":1001"},
		{name: "INLET_CONFIG over default file", env: map[string]string{"INLET_CONFIG": "other.yaml"}, want: ":1002"},
		{name: "-config over INLET_CONFIG", env: map[string]string{"INLET_CONFIG": "other.yaml"}, args: []string{"-config", "third.yaml"}, want: ":1003"},
		{name: "-config empty reads no file", args: []string{"-config="}, want: ":8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			writeFile(t, dir, DefaultFile, "http_addr: \":1001\"\n")
			writeFile(t, dir, "other.yaml", "http_addr: \":1002\"\n")
			writeFile(t, dir, "third.yaml", "http_addr: \":1003\"\n")
			got, err := Load(tt.args, env(tt.env))
			if err != nil {
				t.Fatalf("Load(%q) error: %v", tt.args, err)
			}
			if got.HTTPAddr != tt.want {
				t.Errorf("Load(%q).HTTPAddr = %q, want %q", tt.args, got.HTTPAddr, tt.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name     string
		file     string // written to inlet.yaml and passed with -config when non-empty
		env      map[string]string
		args     []string
		want     []string // substrings of the error
		notFound bool     // whether errors.Is(err, fs.ErrNotExist)
	}{
		{
			name:     "missing file named by flag",
			args:     []string{"-config", "nope.yaml"},
			want:     []string{"config file nope.yaml"},
			notFound: true,
		},
		{
			name:     "missing file named by INLET_CONFIG",
			env:      map[string]string{"INLET_CONFIG": "gone.yaml"},
			want:     []string{"config file gone.yaml"},
			notFound: true,
		},
		{
			name: "unknown YAML keys",
			file: "http_addr: \":1\"\nhttp_adr: \":2\"\nlog_levle: debug\n",
			want: []string{`line 2: unknown key "http_adr"`, `line 3: unknown key "log_levle"`},
		},
		{
			name: "admin token in the file",
			file: "admin_token: abc\n",
			want: []string{"line 1: admin_token is never read from a file; set INLET_ADMIN_TOKEN"},
		},
		{
			name: "wrong YAML type",
			file: "write_queue: lots\n",
			want: []string{"line 1", "lots"},
		},
		{
			name: "duration without unit in YAML",
			file: "read_timeout: 30\n",
			want: []string{"line 1"},
		},
		{
			name: "duplicate YAML key",
			file: "stream: A\nstream: B\n",
			want: []string{`"stream" already defined`},
		},
		{
			name: "top level is not a mapping",
			file: "- http_addr\n",
			want: []string{"want a mapping of settings"},
		},
		{
			name: "two YAML documents",
			file: "stream: A\n---\nstream: B\n",
			want: []string{"only one YAML document"},
		},
		{
			name: "bad env values all reported",
			env:  map[string]string{"INLET_IP_RATE_LIMIT": "abc", "INLET_READ_TIMEOUT": "30", "INLET_DB_MAX_CONNS": "1.5", "INLET_STREAM_REPLICAS": "three"},
			want: []string{
				`INLET_STREAM_REPLICAS: "three" is not an integer`,
				`INLET_IP_RATE_LIMIT: "abc" is not an integer`,
				`INLET_READ_TIMEOUT: "30" is not a duration`,
				`INLET_DB_MAX_CONNS: "1.5" is not an integer`,
			},
		},
		{
			name: "invalid settings from several sources",
			file: "write_queue: 0\n",
			env:  map[string]string{"INLET_TRUSTED_PROXIES": "10.0.0.0/8,bogus"},
			args: []string{"-public-url", "hooks.example.com"},
			want: []string{"write_queue (INLET_WRITE_QUEUE)", `"bogus" is not a CIDR`, `public_url (INLET_PUBLIC_URL): "hooks.example.com"`},
		},
		{
			name: "bad retentions",
			file: "event_retention: 90 days\n",
			want: []string{`line 1: "90 days" is not a retention`},
		},
		{
			name: "negative days",
			env:  map[string]string{"INLET_AUDIT_RETENTION": "-1d"},
			want: []string{
				`INLET_AUDIT_RETENTION: "-1d" is not a number of days`,
			},
		},
		{
			name: "retention below a minute",
			env:  map[string]string{"INLET_DELIVERY_RETENTION": "30s", "INLET_EVENT_RETENTION": "-1h"},
			want: []string{
				"delivery_retention (INLET_DELIVERY_RETENTION): must be 0 (forever) or at least 1m, got 30s",
				"event_retention (INLET_EVENT_RETENTION): must be 0 (forever) or at least 1m, got -1h0m0s",
			},
		},
		{
			name: "stream replicas out of range",
			file: "stream_replicas: 7\n",
			want: []string{"stream_replicas (INLET_STREAM_REPLICAS): must be between 1 and 5, got 7"},
		},
		{
			name: "admin token is not a flag",
			args: []string{"-admin-token", "abc"},
			want: []string{"flag provided but not defined: -admin-token"},
		},
		{
			name: "stray argument",
			args: []string{"-http-addr", ":1", "serve"},
			want: []string{`unexpected argument "serve"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			args := tt.args
			if tt.file != "" {
				args = append([]string{"-config", writeFile(t, dir, "inlet.yaml", tt.file)}, args...)
			}
			var usage bytes.Buffer
			got, _, err := load(nil, args, env(tt.env), &usage)
			if err == nil {
				t.Fatalf("Load(%q) = %v, want an error", args, got)
			}
			if !reflect.DeepEqual(got, Config{}) {
				t.Errorf("Load(%q) returned %v with its error, want the zero Config", args, got)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Load(%q) error = %q, want it to contain %q", args, err, want)
				}
			}
			if gotNotFound := errors.Is(err, fs.ErrNotExist); gotNotFound != tt.notFound {
				t.Errorf("errors.Is(Load(%q), fs.ErrNotExist) = %v, want %v", args, gotNotFound, tt.notFound)
			}
			if usage.Len() > 0 {
				t.Errorf("Load(%q) printed %q, want errors returned only", args, usage.String())
			}
		})
	}
}

func TestLoadHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var usage bytes.Buffer
		_, _, err := load(nil, []string{arg}, nil, &usage)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("Load(%q) error = %v, want flag.ErrHelp", arg, err)
		}
		for _, want := range []string{"-config", "-http-addr", "(default \":8080\")", "INLET_WRITE_QUEUE=4096", "INLET_ADMIN_TOKEN", "INLET_IDLE_TIMEOUT=2m0s"} {
			if !strings.Contains(usage.String(), want) {
				t.Errorf("Load(%q) usage = %q, want it to contain %q", arg, usage.String(), want)
			}
		}
	}
}

func TestLoadEmptyFile(t *testing.T) {
	dir := t.TempDir()
	for _, content := range []string{"", "# only a comment\n", "~\n"} {
		path := writeFile(t, dir, "empty.yaml", content)
		got, err := Load([]string{"-config", path}, nil)
		if err != nil {
			t.Fatalf("Load of a file holding %q: %v", content, err)
		}
		if !reflect.DeepEqual(got, Default()) {
			t.Errorf("Load of a file holding %q = %v, want Default()", content, got)
		}
	}
}

// TestShippedFile keeps configs/inlet.yaml in step with Default and the
// settings list.
func TestShippedFile(t *testing.T) {
	path := filepath.Join("..", "..", "configs", "inlet.yaml")
	got, err := Load([]string{"-config", path}, nil)
	if err != nil {
		t.Fatalf("Load(-config %s): %v", path, err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("Load(-config %s) =\n%v\nwant Default() =\n%v", path, got, Default())
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings() {
		if s.key == "" {
			continue
		}
		// database_url and nats_url are documented commented out.
		re := regexp.MustCompile(`(?m)^(# )?` + regexp.QuoteMeta(s.key) + `:`)
		if !re.Match(data) {
			t.Errorf("%s does not document %s", path, s.key)
		}
		if !strings.Contains(string(data), s.env) {
			t.Errorf("%s does not name %s", path, s.env)
		}
	}
}

func TestLoadCommandUsage(t *testing.T) {
	all := false
	cmd := Command{
		Name: "tail", Usage: "inlet tail [-all]", About: "Prints events as they are published.",
		Flags: func(fs *flag.FlagSet) { fs.BoolVar(&all, "all", false, "print the whole stream first") },
	}
	var usage bytes.Buffer
	_, _, err := LoadCommand(cmd, []string{"-h"}, nil, &usage)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("LoadCommand(-h) = %v, want flag.ErrHelp", err)
	}
	out := usage.String()
	for _, want := range []string{"usage: inlet tail [-all]", "Prints events", "-all", "print the whole stream first", "inlet serve -h"} {
		if !strings.Contains(out, want) {
			t.Errorf("tail -h does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "-http-addr") || strings.Contains(out, "INLET_HTTP_ADDR") {
		t.Errorf("tail -h documents serve's settings:\n%s", out)
	}
	c, fs, err := LoadCommand(cmd, []string{"-all", "-data-dir", "x"}, nil, io.Discard)
	if err != nil || !all || c.DataDir != "x" || fs.NArg() != 0 {
		t.Errorf("LoadCommand(-all -data-dir x) = %v, all %v, data dir %q", err, all, c.DataDir)
	}
	if _, _, err := LoadCommand(cmd, []string{"extra"}, nil, io.Discard); err == nil {
		t.Error("an operand to a command that takes none was accepted")
	}
}
