package ratelimit

import (
	"container/list"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/problem"
	"github.com/dealix/platform/tenancy"
)

// ErrInvalidConfig is wrapped by New's configuration errors. It is the same
// value in every package of the library (tenancy.ErrInvalidConfig).
var ErrInvalidConfig = errs.ErrInvalidConfig

// Defaults of Config.
const (
	// DefaultMaxEntries is the hard cap on buckets held in memory.
	DefaultMaxEntries = 10_000
	// DefaultIdleTimeout is how long an unused bucket is kept.
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultPolicyName names the policy of principals without a plan.
	DefaultPolicyName = "default"
)

// Rate is a token bucket: Requests per Window on average, with bursts of up
// to Burst requests.
type Rate struct {
	// Requests is the quota per Window. Required, > 0.
	Requests int
	// Window is the period of the quota, a whole number of seconds (the
	// headers count in seconds). Required, >= 1s.
	Window time.Duration
	// Burst is the bucket's size. Default: Requests.
	Burst int
}

func (r Rate) withDefaults() (Rate, error) {
	if r.Requests <= 0 || r.Window < time.Second || r.Window%time.Second != 0 || r.Burst < 0 {
		return r, errs.Config("ratelimit", "a Rate needs Requests > 0, a Window of whole seconds >= 1s and Burst >= 0 (got %+v)", r)
	}
	if r.Burst == 0 {
		r.Burst = r.Requests
	}
	return r, nil
}

func (r Rate) limit() rate.Limit { return rate.Limit(float64(r.Requests) / r.Window.Seconds()) }

// Key chooses what a bucket is shared by.
type Key int

const (
	// KeyByTenant gives every tenant one bucket, whatever credential its
	// callers use.
	KeyByTenant Key = iota
	// KeyByCredential gives every API key, and every JWT subject within a
	// tenant, its own bucket.
	KeyByCredential
)

// Config configures a Limiter. Default is required.
type Config struct {
	// Default is the rate of principals without a plan (or with a plan
	// not in Plans); its policy is named DefaultPolicyName. Required.
	Default Rate
	// Plans are named rates, for plans or individual keys. Names are
	// printable ASCII without quotes or backslashes: they appear in the
	// headers.
	Plans map[string]Rate
	// PlanOf names the plan of a principal, for example from a plan
	// lookup keyed by p.TenantID or from p.KeyID for per-key rates. Nil
	// means every principal is on Default. Called on every request; keep
	// it fast.
	PlanOf func(p tenancy.Principal) string
	// Key chooses the bucket: KeyByTenant (default) or KeyByCredential.
	// The key always comes from the authenticated principal, never from a
	// header the client chooses.
	Key Key
	// MaxEntries is the hard cap on buckets kept in memory; the least
	// recently used bucket is dropped to make room. Default:
	// DefaultMaxEntries (10,000). Keep it above the number of
	// tenants active within IdleTimeout: a dropped bucket starts full.
	MaxEntries int
	// IdleTimeout drops buckets unused for this long; they are swept on
	// each request, without a background goroutine. Default:
	// DefaultIdleTimeout (10 minutes).
	IdleTimeout time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Logger receives refusals at debug level. Default: slog.Default().
	Logger *slog.Logger
}

// Limiter limits requests per authenticated tenant or credential with
// golang.org/x/time/rate token buckets held in bounded memory. It is safe
// for concurrent use.
type Limiter struct {
	cfg Config

	mu      sync.Mutex
	entries map[string]*list.Element
	lru     list.List // of *limiterEntry, most recently used first
}

type limiterEntry struct {
	key      string
	limiter  *rate.Limiter
	rate     Rate
	lastSeen time.Time
}

// New validates cfg and returns a limiter.
func New(cfg Config) (*Limiter, error) {
	var err error
	if cfg.Default, err = cfg.Default.withDefaults(); err != nil {
		return nil, err
	}
	plans := make(map[string]Rate, len(cfg.Plans))
	for name, r := range cfg.Plans {
		if !validPolicyName(name) {
			return nil, errs.Config("ratelimit", "plan name %q", name)
		}
		if plans[name], err = r.withDefaults(); err != nil {
			return nil, fmt.Errorf("plan %q: %w", name, err)
		}
	}
	cfg.Plans = plans
	if cfg.Key != KeyByTenant && cfg.Key != KeyByCredential {
		return nil, errs.Config("ratelimit", "unknown Key %d", cfg.Key)
	}
	if cfg.MaxEntries < 0 || cfg.IdleTimeout < 0 {
		return nil, errs.Config("ratelimit", "MaxEntries and IdleTimeout must not be negative")
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Limiter{cfg: cfg, entries: make(map[string]*list.Element)}, nil
}

func validPolicyName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Decision is the outcome of one request against its bucket.
type Decision struct {
	// Allowed says whether the request may proceed.
	Allowed bool
	// Policy names the rate applied: a plan name or DefaultPolicyName.
	Policy string
	// Rate is the rate applied.
	Rate Rate
	// Remaining is the number of requests the bucket would admit now.
	Remaining int
	// Reset is how long until the bucket is full again, in whole seconds.
	Reset time.Duration
	// RetryAfter is how long until one more request is admitted, in whole
	// seconds; zero when Allowed.
	RetryAfter time.Duration
}

// Allow takes one request of p from its bucket.
func (l *Limiter) Allow(p tenancy.Principal) Decision {
	policy, r := l.rateOf(p)
	now := l.cfg.Now()

	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.limiter(l.keyOf(p), r, now)
	allowed := lim.AllowN(now, 1)
	tokens := lim.TokensAt(now)
	perSecond := float64(r.limit())
	d := Decision{
		Allowed:   allowed,
		Policy:    policy,
		Rate:      r,
		Remaining: max(0, int(math.Floor(tokens))),
		Reset:     ceilSeconds((float64(r.Burst) - tokens) / perSecond),
	}
	if !allowed {
		d.RetryAfter = max(time.Second, ceilSeconds((1-tokens)/perSecond))
	}
	return d
}

func ceilSeconds(s float64) time.Duration {
	if s <= 0 {
		return 0
	}
	// Round first so float noise (2.0000000001) does not add a second.
	return time.Duration(math.Ceil(math.Round(s*1e6)/1e6)) * time.Second
}

func (l *Limiter) rateOf(p tenancy.Principal) (string, Rate) {
	if l.cfg.PlanOf != nil {
		name := l.cfg.PlanOf(p)
		if r, ok := l.cfg.Plans[name]; ok {
			return name, r
		}
	}
	return DefaultPolicyName, l.cfg.Default
}

// keyOf derives the bucket key from the authenticated principal only.
func (l *Limiter) keyOf(p tenancy.Principal) string {
	if l.cfg.Key == KeyByTenant {
		return p.TenantID
	}
	if p.Method == tenancy.AuthAPIKey {
		return string(tenancy.AuthAPIKey) + "\x00" + p.KeyID
	}
	return p.TenantID + "\x00" + string(p.Method) + "\x00" + p.Subject
}

// limiter returns the bucket for key, creating it (and making room) when
// needed. l.mu is held.
func (l *Limiter) limiter(key string, r Rate, now time.Time) *rate.Limiter {
	l.evictIdle(now)
	if el, ok := l.entries[key]; ok {
		e := el.Value.(*limiterEntry)
		e.lastSeen = now
		l.lru.MoveToFront(el)
		if e.rate != r { // the principal's plan changed
			e.limiter.SetLimitAt(now, r.limit())
			e.limiter.SetBurstAt(now, r.Burst)
			e.rate = r
		}
		return e.limiter
	}
	for len(l.entries) >= l.cfg.MaxEntries {
		l.remove(l.lru.Back())
	}
	e := &limiterEntry{key: key, limiter: rate.NewLimiter(r.limit(), r.Burst), rate: r, lastSeen: now}
	l.entries[key] = l.lru.PushFront(e)
	return e.limiter
}

// evictIdle drops buckets unused for IdleTimeout, oldest first; the list
// is ordered by use, so it stops at the first recent one.
func (l *Limiter) evictIdle(now time.Time) {
	for el := l.lru.Back(); el != nil && now.Sub(el.Value.(*limiterEntry).lastSeen) >= l.cfg.IdleTimeout; el = l.lru.Back() {
		l.remove(el)
	}
}

func (l *Limiter) remove(el *list.Element) {
	delete(l.entries, el.Value.(*limiterEntry).key)
	l.lru.Remove(el)
}

// Len is the number of buckets held in memory.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// Handler is middleware that limits requests by the principal an
// authentication middleware put in the context, so place it after one.
// Every response carries the RateLimit-Policy and RateLimit headers of
// draft-ietf-httpapi-ratelimit-headers-09:
//
//	RateLimit-Policy: "default";q=100;w=60
//	RateLimit: "default";r=42;t=35
//
// where q is the quota per window w (seconds), r the requests remaining and
// t the seconds until the bucket is full again. A refused request gets a 429
// problem+json with Retry-After (seconds until one more request is
// admitted). A request without a principal is refused with 401: the
// limiter never falls back to a client-chosen key.
func (l *Limiter) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := tenancy.PrincipalFrom(r.Context())
		if !ok {
			// Never a client-chosen fallback key: no principal, no entry.
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+tenancy.DefaultRealm+`"`)
			problem.Status(w, http.StatusUnauthorized, "authentication required")
			return
		}
		d := l.Allow(p)
		d.writeHeaders(w.Header())
		if !d.Allowed {
			recordRateLimited(r.Context(), d.Policy)
			l.cfg.Logger.DebugContext(r.Context(), "ratelimit: rate limited", "tenant", p.TenantID, "policy", d.Policy)
			w.Header().Set("Retry-After", strconv.Itoa(int(d.RetryAfter/time.Second)))
			_ = problem.Write(w, problem.Details{
				Status: http.StatusTooManyRequests,
				Detail: "rate limit exceeded",
				Extensions: map[string]any{
					"policy":      d.Policy,
					"retry_after": int(d.RetryAfter / time.Second),
				},
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeHeaders sets the draft's RateLimit-Policy and RateLimit fields.
func (d Decision) writeHeaders(h http.Header) {
	var b strings.Builder
	b.Grow(48)
	b.WriteByte('"')
	b.WriteString(d.Policy)
	b.WriteString(`";q=`)
	b.WriteString(strconv.Itoa(d.Rate.Requests))
	b.WriteString(";w=")
	b.WriteString(strconv.Itoa(int(d.Rate.Window / time.Second)))
	h.Set("RateLimit-Policy", b.String())

	b.Reset()
	b.WriteByte('"')
	b.WriteString(d.Policy)
	b.WriteString(`";r=`)
	b.WriteString(strconv.Itoa(d.Remaining))
	b.WriteString(";t=")
	b.WriteString(strconv.Itoa(int(d.Reset / time.Second)))
	h.Set("RateLimit", b.String())
}
