package server

import (
	"cmp"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/examples/dealix/scoring"
	"github.com/dealix/platform/internal/pgboot"
	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/tenancy/ratelimit"
)

// ErrInvalidConfig is wrapped by every configuration error: the process
// exits with status 2 for it (ExitCode). It is the library's shared value.
var ErrInvalidConfig = tenancy.ErrInvalidConfig

// Defaults of Config. Each is also the default of its environment variable.
const (
	DefaultAddr            = "127.0.0.1:8080"
	DefaultAppRole         = "dealix_server_app"
	DefaultSystemRole      = "dealix_server_system"
	DefaultPostgresImage   = "postgres:16-alpine"
	DefaultJWTIssuer       = "dealix-dev"
	DefaultJWTAudience     = "dealix-api"
	DefaultCORSOrigins     = "http://localhost:3000"
	DefaultRateLimit       = "600/1m"
	DefaultMaxBodyBytes    = 1 << 20
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultAPIKeyCacheTTL is Config.APIKeyCacheTTL's default: an API
	// key's row is read at most once per 5 s per instance, and a
	// revocation reaches every instance within that.
	DefaultAPIKeyCacheTTL = 5 * time.Second
	DefaultAppPoolSize    = 20
)

// Config is the server's configuration. LoadConfig reads it from the
// environment and flags; New fills every zero field with its default, so a
// test can set only what it needs.
type Config struct {
	// Addr is the listen address. DEALIX_ADDR or -addr; default
	// DefaultAddr (loopback only: set 0.0.0.0:8080 to serve others).
	Addr string

	// DatabaseURL is a PostgreSQL URL of the role that owns the schemas
	// and runs migrations (a superuser will do). DATABASE_URL.
	DatabaseURL string
	// AppDatabaseURL is the URL of the role that serves requests
	// (NOSUPERUSER, NOBYPASSRLS). APP_DATABASE_URL; empty: the server
	// creates AppRole with a generated password, when DatabaseURL's role
	// may.
	AppDatabaseURL string
	// SystemDatabaseURL is the URL of the role that runs background work
	// across tenants (BYPASSRLS). SYSTEM_DATABASE_URL; empty: the server
	// creates SystemRole with a generated password, when DatabaseURL's
	// role may (a superuser).
	SystemDatabaseURL string
	// ListenDatabaseURL is a direct PostgreSQL URL (not through a
	// transaction pooler) for the queue workers' LISTEN connection, which
	// must stay on one session. Set it when SYSTEM_DATABASE_URL goes
	// through PgBouncer in transaction mode; any role that may connect will
	// do. LISTEN_DATABASE_URL; empty: the system pool's configuration.
	ListenDatabaseURL string
	// AppRole and SystemRole name the roles the server creates. A created
	// role's password is generated anew at each start, so instances
	// sharing one database should be given APP_DATABASE_URL and
	// SYSTEM_DATABASE_URL instead. DEALIX_APP_ROLE, DEALIX_SYSTEM_ROLE;
	// defaults DefaultAppRole and DefaultSystemRole.
	AppRole, SystemRole string
	// AppPoolSize is the app role's pool size. DEALIX_APP_POOL_SIZE;
	// default DefaultAppPoolSize.
	AppPoolSize int

	// DataDir is where a local PostgreSQL cluster keeps its data when the
	// server starts one itself. DEALIX_DATA_DIR; default
	// <user cache dir>/dealix/postgres.
	DataDir string
	// ResetData wipes DataDir before starting. DEALIX_RESET_DATA=true or
	// -reset-data.
	ResetData bool
	// PostgresImage is the container image started when Docker is the
	// database's source. DEALIX_POSTGRES_IMAGE; default
	// DefaultPostgresImage.
	PostgresImage string
	// PullImage lets a missing image be pulled. DEALIX_PULL_IMAGE=true.
	PullImage bool

	// JWTIssuer and JWTAudience are the required iss and aud claims.
	// DEALIX_JWT_ISSUER, DEALIX_JWT_AUDIENCE; defaults DefaultJWTIssuer
	// and DefaultJWTAudience.
	JWTIssuer, JWTAudience string
	// JWTHMACKey verifies HS256 tokens (at least 32 bytes).
	// DEALIX_JWT_HMAC_KEY, base64. Empty and no JWKSURL: a random
	// development key is made at start-up (tokens die with the process)
	// and the demo JWT is signed with it.
	JWTHMACKey []byte
	// JWKSURL verifies tokens of an identity provider. DEALIX_JWT_JWKS_URL.
	JWKSURL string
	// JWTAlgorithms pins the accepted algorithms of JWKSURL.
	// DEALIX_JWT_ALGORITHMS, comma-separated; default RS256.
	JWTAlgorithms []string

	// CORSOrigins are the browser origins allowed to call the API, exact
	// scheme://host[:port]. DEALIX_CORS_ORIGINS, comma-separated; default
	// DefaultCORSOrigins. "none" allows no origin.
	CORSOrigins []string
	// RateLimit is each tenant's request rate. DEALIX_RATE_LIMIT as
	// <requests>/<window>, e.g. 600/1m; default DefaultRateLimit. The
	// burst is DEALIX_RATE_BURST, default the requests.
	RateLimit ratelimit.Rate
	// MaxBodyBytes bounds request bodies. DEALIX_MAX_BODY_BYTES; default
	// DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// APIKeyCacheTTL is how long a verified API key is answered from
	// memory without reading its row (tenancy.APIKeysConfig.CacheTTL). A
	// key revoked through this instance is refused at once; other
	// instances keep accepting it until their entry expires, so this
	// bounds how long a revocation takes to reach every instance.
	// DEALIX_API_KEY_CACHE_TTL; default DefaultAPIKeyCacheTTL (5 s); 0
	// there, or a negative value here, turns the cache off.
	APIKeyCacheTTL time.Duration
	// ShutdownTimeout bounds the graceful stop: draining requests and
	// stopping background work. DEALIX_SHUTDOWN_TIMEOUT; default
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration

	// NoWorkers makes the instance serve requests only: it works no queue,
	// runs no durable workflow and runs no sweeper. The jobs and runs its
	// requests create wait, committed, for an instance with workers on the
	// same database, so API and worker instances can be scaled apart.
	// DEALIX_WORKERS=false; by default every instance has workers.
	NoWorkers bool
	// SkipDemo skips seeding the demo tenant, its API key and JWT.
	// DEALIX_DEMO=false.
	SkipDemo bool
	// DebugRoutes adds GET /debug/slow, a request that lasts until the
	// server starts stopping (to watch a graceful stop). Off by default;
	// DEALIX_DEBUG_ROUTES=true.
	DebugRoutes bool
	// LogLevel is debug, info, warn or error. DEALIX_LOG_LEVEL; default info.
	LogLevel slog.Level
	// Logger receives the server's logs. Not from the environment;
	// default: text to stderr at LogLevel.
	Logger *slog.Logger
	// QueryTracer, when set, traces every statement of the app and system
	// pools (pgx calls its batch, copy and prepare methods too when it
	// implements pgx.BatchTracer, pgx.CopyFromTracer or pgx.PrepareTracer):
	// for statement logs, metrics, or a test that reads every statement
	// the server sends. Not from the environment; default none.
	QueryTracer pgx.QueryTracer
}

// EnvVars lists every environment variable LoadConfig reads, for the
// usage text and the README.
var EnvVars = []string{
	"DEALIX_ADDR", "DATABASE_URL", "APP_DATABASE_URL", "SYSTEM_DATABASE_URL", "LISTEN_DATABASE_URL",
	"DEALIX_APP_ROLE", "DEALIX_SYSTEM_ROLE", "DEALIX_APP_POOL_SIZE",
	"DEALIX_DATA_DIR", "DEALIX_RESET_DATA", "DEALIX_POSTGRES_IMAGE", "DEALIX_PULL_IMAGE",
	"DEALIX_JWT_ISSUER", "DEALIX_JWT_AUDIENCE", "DEALIX_JWT_HMAC_KEY", "DEALIX_JWT_JWKS_URL", "DEALIX_JWT_ALGORITHMS",
	"DEALIX_CORS_ORIGINS", "DEALIX_RATE_LIMIT", "DEALIX_RATE_BURST", "DEALIX_MAX_BODY_BYTES", "DEALIX_API_KEY_CACHE_TTL",
	"DEALIX_SHUTDOWN_TIMEOUT", "DEALIX_WORKERS", "DEALIX_DEMO", "DEALIX_DEBUG_ROUTES", "DEALIX_LOG_LEVEL",
}

// LoadConfig reads the configuration from args (without the program name)
// and getenv; a flag wins over its variable. Every problem is reported at
// once, wrapped in ErrInvalidConfig. -h returns flag.ErrHelp after
// printing the usage to usage.
func LoadConfig(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	var cfg Config
	var problems []string
	bad := func(name, format string, a ...any) {
		problems = append(problems, name+": "+fmt.Sprintf(format, a...))
	}
	str := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	boolean := func(name string, def bool) bool {
		v := str(name, "")
		if v == "" {
			return def
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad(name, "want true or false, got %q", v)
		}
		return b
	}
	integer := func(name string, def int64) int64 {
		v := str(name, "")
		if v == "" {
			return def
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			bad(name, "want a positive whole number, got %q", v)
			return def
		}
		return n
	}

	cfg.Addr = str("DEALIX_ADDR", DefaultAddr)
	cfg.DatabaseURL = str("DATABASE_URL", "")
	cfg.AppDatabaseURL = str("APP_DATABASE_URL", "")
	cfg.SystemDatabaseURL = str("SYSTEM_DATABASE_URL", "")
	cfg.ListenDatabaseURL = str("LISTEN_DATABASE_URL", "")
	cfg.AppRole = str("DEALIX_APP_ROLE", DefaultAppRole)
	cfg.SystemRole = str("DEALIX_SYSTEM_ROLE", DefaultSystemRole)
	cfg.AppPoolSize = int(integer("DEALIX_APP_POOL_SIZE", DefaultAppPoolSize))
	cfg.DataDir = str("DEALIX_DATA_DIR", "")
	cfg.ResetData = boolean("DEALIX_RESET_DATA", false)
	cfg.PostgresImage = str("DEALIX_POSTGRES_IMAGE", DefaultPostgresImage)
	cfg.PullImage = boolean("DEALIX_PULL_IMAGE", false)
	// The domains read their own variables when they are mounted;
	// checking them here makes a bad one stop the start with status 2.
	if _, err := scoring.ConfigFromEnv(getenv); err != nil {
		problems = append(problems, err.Error())
	}
	problems = append(problems, checkDomainSettings(str)...)
	cfg.JWTIssuer = str("DEALIX_JWT_ISSUER", DefaultJWTIssuer)
	cfg.JWTAudience = str("DEALIX_JWT_AUDIENCE", DefaultJWTAudience)
	if v := str("DEALIX_JWT_HMAC_KEY", ""); v != "" {
		key, err := decodeKey(v)
		if err != nil {
			bad("DEALIX_JWT_HMAC_KEY", "%v", err)
		}
		cfg.JWTHMACKey = key
	}
	cfg.JWKSURL = str("DEALIX_JWT_JWKS_URL", "")
	if v := str("DEALIX_JWT_ALGORITHMS", ""); v != "" {
		cfg.JWTAlgorithms = splitList(v)
	}
	cfg.CORSOrigins = splitList(str("DEALIX_CORS_ORIGINS", DefaultCORSOrigins))
	rl, err := parseRate(str("DEALIX_RATE_LIMIT", DefaultRateLimit))
	if err != nil {
		bad("DEALIX_RATE_LIMIT", "%v", err)
	}
	rl.Burst = int(integer("DEALIX_RATE_BURST", int64(rl.Requests)))
	cfg.RateLimit = rl
	cfg.MaxBodyBytes = integer("DEALIX_MAX_BODY_BYTES", DefaultMaxBodyBytes)
	if v := str("DEALIX_SHUTDOWN_TIMEOUT", ""); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			bad("DEALIX_SHUTDOWN_TIMEOUT", "want a positive duration such as 30s, got %q", v)
		}
		cfg.ShutdownTimeout = d
	}
	if v := str("DEALIX_API_KEY_CACHE_TTL", ""); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			bad("DEALIX_API_KEY_CACHE_TTL", "want a duration such as 5s, or 0 for no cache, got %q", v)
		}
		cfg.APIKeyCacheTTL = cmp.Or(d, -1) // 0 here means off; 0 in Config means the default
	}
	cfg.NoWorkers = !boolean("DEALIX_WORKERS", true)
	cfg.SkipDemo = !boolean("DEALIX_DEMO", true)
	cfg.DebugRoutes = boolean("DEALIX_DEBUG_ROUTES", false)
	if v := str("DEALIX_LOG_LEVEL", ""); v != "" {
		if err := cfg.LogLevel.UnmarshalText([]byte(v)); err != nil {
			bad("DEALIX_LOG_LEVEL", "want debug, info, warn or error, got %q", v)
		}
	}

	fs := flag.NewFlagSet("dealix", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address (DEALIX_ADDR)")
	fs.BoolVar(&cfg.ResetData, "reset-data", cfg.ResetData, "wipe the local PostgreSQL data directory before starting (DEALIX_RESET_DATA)")
	fs.Usage = func() {
		fmt.Fprintf(usage, "Usage: dealix [-addr host:port] [-reset-data]\n\nThe Dealix reference server. Flags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(usage, "\nEnvironment: %s\n(see examples/dealix/README.md for each one's default)\n", strings.Join(EnvVars, ", "))
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if fs.NArg() > 0 {
		bad("arguments", "unexpected %q", fs.Args())
	}
	cfg, err = cfg.withDefaults()
	// Report every problem once: a value that did not parse is not
	// reported again by the validation of its zero.
	var more []string
	if err != nil {
		more = strings.Split(strings.TrimPrefix(err.Error(), ErrInvalidConfig.Error()+":\n  "), "\n  ")
	}
	for _, p := range more {
		name, _, _ := strings.Cut(p, ":")
		if !slices.ContainsFunc(problems, func(q string) bool { return strings.HasPrefix(q, name+":") }) {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return cfg, fmt.Errorf("%w:\n  %s", ErrInvalidConfig, strings.Join(problems, "\n  "))
	}
	return cfg, nil
}

// withDefaults fills the zero fields with their defaults and validates the
// result.
func (c Config) withDefaults() (Config, error) {
	c.Addr = cmp.Or(c.Addr, DefaultAddr)
	c.AppRole = cmp.Or(c.AppRole, DefaultAppRole)
	c.SystemRole = cmp.Or(c.SystemRole, DefaultSystemRole)
	c.PostgresImage = cmp.Or(c.PostgresImage, DefaultPostgresImage)
	c.JWTIssuer = cmp.Or(c.JWTIssuer, DefaultJWTIssuer)
	c.JWTAudience = cmp.Or(c.JWTAudience, DefaultJWTAudience)
	if c.AppPoolSize == 0 {
		c.AppPoolSize = DefaultAppPoolSize
	}
	if c.CORSOrigins == nil {
		c.CORSOrigins = splitList(DefaultCORSOrigins)
	}
	if c.RateLimit == (ratelimit.Rate{}) {
		c.RateLimit, _ = parseRate(DefaultRateLimit)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.APIKeyCacheTTL == 0 {
		c.APIKeyCacheTTL = DefaultAPIKeyCacheTTL
	}
	if c.DataDir == "" {
		c.DataDir = pgboot.DefaultDataDir()
	}
	if len(c.JWTAlgorithms) == 0 && c.JWKSURL != "" {
		c.JWTAlgorithms = []string{"RS256"}
	}
	return c, c.validate()
}

var rolePattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func (c Config) validate() error {
	var problems []string
	bad := func(name, format string, a ...any) {
		problems = append(problems, name+": "+fmt.Sprintf(format, a...))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("DEALIX_ADDR", "want host:port, got %q", c.Addr)
	}
	for name, u := range map[string]string{"DATABASE_URL": c.DatabaseURL, "APP_DATABASE_URL": c.AppDatabaseURL, "SYSTEM_DATABASE_URL": c.SystemDatabaseURL, "LISTEN_DATABASE_URL": c.ListenDatabaseURL} {
		if u == "" {
			continue
		}
		if _, err := pgxpool.ParseConfig(u); err != nil {
			bad(name, "not a PostgreSQL connection string (%v)", redactErr(err))
		}
	}
	if (c.AppDatabaseURL != "" || c.SystemDatabaseURL != "") && c.DatabaseURL == "" {
		bad("DATABASE_URL", "is required with APP_DATABASE_URL or SYSTEM_DATABASE_URL (the owner runs the migrations)")
	}
	for name, role := range map[string]string{"DEALIX_APP_ROLE": c.AppRole, "DEALIX_SYSTEM_ROLE": c.SystemRole} {
		if !rolePattern.MatchString(role) {
			bad(name, "want a lower-case identifier, got %q", role)
		}
	}
	if c.AppRole == c.SystemRole {
		bad("DEALIX_SYSTEM_ROLE", "must differ from DEALIX_APP_ROLE")
	}
	if c.AppPoolSize < 1 || c.AppPoolSize > 1000 {
		bad("DEALIX_APP_POOL_SIZE", "want 1 to 1000, got %d", c.AppPoolSize)
	}
	if c.JWTHMACKey != nil && len(c.JWTHMACKey) < tenancy.MinHMACKeyBytes {
		bad("DEALIX_JWT_HMAC_KEY", "want at least %d bytes, got %d", tenancy.MinHMACKeyBytes, len(c.JWTHMACKey))
	}
	if c.JWKSURL != "" {
		if u, err := url.Parse(c.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("DEALIX_JWT_JWKS_URL", "want an http(s) URL, got %q", c.JWKSURL)
		}
	}
	for _, o := range c.CORSOrigins {
		if o == "none" && len(c.CORSOrigins) == 1 {
			continue
		}
		if err := checkOrigin(o); err != nil {
			bad("DEALIX_CORS_ORIGINS", "%v", err)
		}
	}
	if c.RateLimit.Requests <= 0 || c.RateLimit.Window < time.Second || c.RateLimit.Window%time.Second != 0 || c.RateLimit.Burst < 0 {
		bad("DEALIX_RATE_LIMIT", "want <requests>/<window> with requests > 0 and a window of whole seconds, got %d/%s", c.RateLimit.Requests, c.RateLimit.Window)
	}
	if c.MaxBodyBytes < 1 {
		bad("DEALIX_MAX_BODY_BYTES", "must be positive")
	}
	if c.ShutdownTimeout < 0 {
		bad("DEALIX_SHUTDOWN_TIMEOUT", "must be positive")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w:\n  %s", ErrInvalidConfig, strings.Join(problems, "\n  "))
	}
	return nil
}

// parseRate reads <requests>/<window>, the window a Go duration ("1m",
// "10s") or a bare unit ("s", "m", "h" for one of it).
func parseRate(s string) (ratelimit.Rate, error) {
	n, w, ok := strings.Cut(s, "/")
	if !ok {
		return ratelimit.Rate{}, fmt.Errorf("want <requests>/<window> such as 600/1m, got %q", s)
	}
	requests, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || requests <= 0 {
		return ratelimit.Rate{}, fmt.Errorf("want a positive number of requests, got %q", n)
	}
	w = strings.TrimSpace(w)
	if w == "s" || w == "m" || w == "h" {
		w = "1" + w
	}
	window, err := time.ParseDuration(w)
	if err != nil || window < time.Second || window%time.Second != 0 {
		return ratelimit.Rate{}, fmt.Errorf("want a window of whole seconds such as 1m, got %q", w)
	}
	return ratelimit.Rate{Requests: requests, Window: window, Burst: requests}, nil
}

func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("want base64 (for example the output of: openssl rand -base64 32)")
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// redactErr keeps a password out of a connection-string error.
func redactErr(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		return "cannot parse it"
	}
	return msg
}

// ExitCode is the process's exit status for Run's error: 0 for nil, 2 for
// a configuration error (the user must change something), 1 otherwise.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrInvalidConfig):
		return 2
	default:
		return 1
	}
}

// checkDomainSettings checks the variables the domains' mount functions
// read (billing, intake, deals' debug knobs, the console), which would
// otherwise be ignored or fail late when bad.
func checkDomainSettings(str func(name, def string) string) []string {
	var problems []string
	duration := func(name string, min time.Duration) {
		if v := str(name, ""); v != "" {
			if d, err := time.ParseDuration(v); err != nil || d < min {
				problems = append(problems, fmt.Sprintf("%s: want a duration of at least %s such as 500ms, got %q", name, min, v))
			}
		}
	}
	duration("DEALIX_MOYASAR_PAY_AFTER", time.Millisecond)
	duration("DEALIX_CONSOLE_SESSION_TTL", time.Minute)
	duration(EnvDealsStepDelay, 0)
	if v := str("DEALIX_WEBHOOK_MAX_ATTEMPTS", ""); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 1000 {
			problems = append(problems, fmt.Sprintf("DEALIX_WEBHOOK_MAX_ATTEMPTS: want a whole number from 1 to 1000, got %q", v))
		}
	}
	for _, name := range []string{"DEALIX_PUBLIC_URL", "DEALIX_MOYASAR_API_URL"} {
		if v := str(name, ""); v != "" {
			if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				problems = append(problems, fmt.Sprintf("%s: want an http(s) URL such as https://dealix.example.com, got %q", name, v))
			}
		}
	}
	return problems
}
