package tenancy

import (
	"crypto/sha256"
	"slices"
	"sync"
	"time"
)

// DefaultAPIKeyCacheSize is how many verified keys an APIKeys service with
// a CacheTTL keeps when APIKeysConfig.CacheSize is zero.
const DefaultAPIKeyCacheSize = 10_000

// keyCache holds recently verified API keys by the SHA-256 of the whole
// key, so a warm key costs one hash and one map lookup instead of a
// transaction. Only keys that matched their stored hash and were not
// revoked enter it; an entry names the exact key bytes, so a hit needs no
// second check of the key's form.
type keyCache struct {
	ttl  time.Duration
	size int
	now  func() time.Time

	mu      sync.RWMutex
	entries map[[sha256.Size]byte]*cachedKey
}

type cachedKey struct {
	principal Principal
	expires   time.Time
}

func newKeyCache(ttl time.Duration, size int, now func() time.Time) *keyCache {
	return &keyCache{ttl: ttl, size: size, now: now, entries: make(map[[sha256.Size]byte]*cachedKey)}
}

// get returns the principal of the key hashing to sum while its entry is
// fresh.
func (c *keyCache) get(sum *[sha256.Size]byte) (Principal, bool) {
	c.mu.RLock()
	e, ok := c.entries[*sum]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		return Principal{}, false
	}
	return e.principal, true
}

// put remembers a verified key for the TTL. When the cache is full, the
// expired entries are dropped first; if none was, the key is not cached.
func (c *keyCache) put(sum *[sha256.Size]byte, p Principal) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.size {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.size {
			return
		}
	}
	p.Scopes = slices.Clip(p.Scopes) // an append by one caller must not write into another's
	c.entries[*sum] = &cachedKey{principal: p, expires: now.Add(c.ttl)}
}

// forget drops the entries of key id of tenant, after a revocation.
func (c *keyCache) forget(tenant, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if e.principal.TenantID == tenant && e.principal.Subject == id {
			delete(c.entries, k)
		}
	}
}
