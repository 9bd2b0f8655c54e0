package tenancy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"golang.org/x/time/rate"
)

// maxJWKSBytes caps the body of a JWKS response: real sets are a few
// kilobytes, and the cap keeps a misbehaving endpoint from filling memory.
const maxJWKSBytes = 1 << 20

// jwksKey is one verification key of a JWK Set.
type jwksKey struct {
	alg string // the JWK's "alg", "" when it names none
	key any
}

// jwksCache holds the keys of a JWK Set URL. Its refresh lives until
// close, whatever context the verifier was built with: a background loop
// fetches the set every interval, and a token naming a kid the cache does
// not hold triggers a fetch, at most once per minInterval (the limiter), so
// a flood of made-up kids cannot turn into a flood of requests to the
// identity provider. Concurrent callers share one fetch.
type jwksCache struct {
	url         string
	client      *http.Client
	timeout     time.Duration
	interval    time.Duration
	minInterval time.Duration
	now         func() time.Time
	logger      *slog.Logger
	unknownKID  *rate.Limiter

	keys atomic.Pointer[map[string]jwksKey]

	mu       sync.Mutex
	inflight *jwksFetch // the fetch running now, shared by its waiters
	closed   bool
	wg       sync.WaitGroup

	// ctx lives until close: fetches run under it, never under a caller's
	// context, so a request that gives up does not abort a fetch others
	// wait for, and a constructor's short-lived context does not end the
	// refresh.
	ctx    context.Context
	cancel context.CancelFunc
}

// jwksFetch is one fetch of the set; done closes when it ends.
type jwksFetch struct {
	done chan struct{}
	err  error
}

var errJWKSClosed = errors.New("the verifier is closed")

func newJWKSCache(cfg JWTConfig) *jwksCache {
	ctx, cancel := context.WithCancel(context.Background())
	c := &jwksCache{
		url:         cfg.JWKSURL,
		client:      cfg.JWKSClient,
		timeout:     cfg.JWKSTimeout,
		interval:    cfg.JWKSRefresh,
		minInterval: cfg.JWKSMinRefreshInterval,
		now:         cfg.Now,
		logger:      cfg.Logger,
		unknownKID:  rate.NewLimiter(rate.Every(cfg.JWKSMinRefreshInterval), 1),
		ctx:         ctx,
		cancel:      cancel,
	}
	if c.client == nil {
		c.client = http.DefaultClient
	}
	c.keys.Store(&map[string]jwksKey{})
	return c
}

// start waits for the first fetch, at most until ctx ends (the fetch
// itself goes on under c.ctx), then starts the background loop. A failed
// first fetch is logged, not returned: the verifier starts, refuses JWKS
// tokens until a fetch succeeds, and retries every minInterval.
func (c *jwksCache) start(ctx context.Context) {
	err := c.wait(ctx, c.fetchShared())
	if err != nil {
		c.logger.ErrorContext(ctx, "tenancy: JWKS fetch failed", "url", c.url, "error", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.wg.Add(1)
	go c.loop(err == nil)
}

// loop refreshes the set every interval until close; after a failure it
// tries again after minInterval.
func (c *jwksCache) loop(ok bool) {
	defer c.wg.Done()
	for {
		next := c.interval
		if !ok {
			next = min(c.interval, c.minInterval)
		}
		timer := time.NewTimer(next)
		select {
		case <-c.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		err := c.wait(c.ctx, c.fetchShared())
		ok = err == nil
		if err != nil && c.ctx.Err() == nil {
			c.logger.ErrorContext(c.ctx, "tenancy: JWKS refresh failed", "url", c.url, "error", err)
		}
	}
}

// lookup returns the key named kid. An unknown kid waits for a fetch: the
// one running, or a new one when the rate limit allows; otherwise it is
// refused at once. ctx bounds only the wait.
func (c *jwksCache) lookup(ctx context.Context, kid string) (jwksKey, error) {
	if k, ok := (*c.keys.Load())[kid]; ok {
		return k, nil
	}
	c.mu.Lock()
	f := c.inflight
	c.mu.Unlock()
	if f == nil {
		if !c.unknownKID.AllowN(c.now(), 1) {
			return jwksKey{}, errUnknownKey
		}
		f = c.fetchShared()
	}
	if err := c.wait(ctx, f); err != nil {
		return jwksKey{}, fmt.Errorf("%w: refresh: %w", errUnknownKey, err)
	}
	if k, ok := (*c.keys.Load())[kid]; ok {
		return k, nil
	}
	return jwksKey{}, errUnknownKey
}

func (c *jwksCache) wait(ctx context.Context, f *jwksFetch) error {
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetchShared returns the fetch running now, or starts one.
func (c *jwksCache) fetchShared() *jwksFetch {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight != nil {
		return c.inflight
	}
	f := &jwksFetch{done: make(chan struct{})}
	if c.closed {
		f.err = errJWKSClosed
		close(f.done)
		return f
	}
	c.inflight = f
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f.err = c.fetch()
		c.mu.Lock()
		c.inflight = nil
		c.mu.Unlock()
		close(f.done)
	}()
	return f
}

// fetch gets the set and replaces the keys. Keys the verifier cannot use
// (no kid, "use" other than "sig", a type it does not know) are skipped,
// so one odd key does not hide the others; a response that is not a JWK
// Set keeps the keys held before.
func (c *jwksCache) fetch() error {
	ctx, cancel := context.WithTimeout(c.ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	res, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", c.url, res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxJWKSBytes+1))
	if err != nil {
		return err
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("GET %s: the JWK Set is larger than %d bytes", c.url, maxJWKSBytes)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("GET %s: not a JWK Set: %w", c.url, err)
	}
	keys := make(map[string]jwksKey, len(set.Keys))
	for _, raw := range set.Keys {
		kid, k, err := parseJWK(ctx, raw)
		if err != nil {
			c.logger.DebugContext(ctx, "tenancy: JWKS key skipped", "url", c.url, "kid", kid, "error", err)
			continue
		}
		keys[kid] = k
	}
	c.keys.Store(&keys)
	return nil
}

// parseJWK turns one JWK into a verification key with
// github.com/MicahParks/keyfunc/v3 (and its jwkset).
func parseJWK(ctx context.Context, raw json.RawMessage) (string, jwksKey, error) {
	var head struct {
		KID string `json:"kid"`
		Use string `json:"use"`
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return "", jwksKey{}, err
	}
	if head.KID == "" {
		return "", jwksKey{}, errors.New("no kid")
	}
	if head.Use != "" && head.Use != "sig" {
		return head.KID, jwksKey{}, fmt.Errorf("use %q", head.Use)
	}
	kf, err := keyfunc.NewJWKJSON(raw)
	if err != nil {
		return head.KID, jwksKey{}, err
	}
	all, err := kf.Storage().KeyReadAll(ctx)
	if err != nil || len(all) != 1 {
		return head.KID, jwksKey{}, fmt.Errorf("unreadable key: %v", err)
	}
	return head.KID, jwksKey{alg: head.Alg, key: publicOf(all[0].Key())}, nil
}

// close stops the refresh and waits for the fetches running.
func (c *jwksCache) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}
