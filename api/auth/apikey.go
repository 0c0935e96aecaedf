package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/gavel-dev/gavel/store"
)

// KeyPrefix starts every API key gavel makes, so that a key is recognised
// in a config file or a leaked log (and by secret scanners).
const KeyPrefix = "gvl_"

// NewAPIKey returns a fresh API key: "gvl_" and 32 random bytes in
// base64url.
func NewAPIKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return KeyPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// NewKeyID returns a fresh key id: "key_" and 12 hex digits.
func NewKeyID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "key_" + hex.EncodeToString(b)
}

// HashKey is what the store keeps of an API key: its sha256.
func HashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// ShownPrefix is the part of a key that listings show to recognise it by:
// its first 8 characters (12 for a "gvl_" key, whose first four are
// always the same). It is not enough to guess the rest.
func ShownPrefix(key string) string {
	n := 8
	if strings.HasPrefix(key, KeyPrefix) {
		n += len(KeyPrefix)
	}
	return key[:min(n, len(key))]
}

// NewKey builds the stored form of a fresh API key with name and roles,
// and returns the key itself, which is shown once and never stored.
func NewKey(name string, roles []string, by string, now time.Time) (store.Key, string) {
	secret := NewAPIKey()
	return store.Key{
		ID:        NewKeyID(),
		Name:      name,
		Prefix:    ShownPrefix(secret),
		Hash:      HashKey(secret),
		Roles:     roles,
		CreatedBy: by,
		CreatedAt: now.UTC(),
	}, secret
}

// EnsureKey makes sure the store holds a key for secret (a token gavel
// generated, such as the hook token): when none has its hash, one is
// created with name and roles. A key that exists is left as it is, so a
// revoked one stays revoked. When name is taken by a key with another hash
// (the token file was replaced), the new key is named name-<id>.
func EnsureKey(ctx context.Context, keys store.Keys, secret, name string, roles []string, now time.Time) (store.Key, error) {
	k, err := keys.KeyByHash(ctx, HashKey(secret))
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.Key{}, fmt.Errorf("ensure key %s: %w", name, err)
	}
	k = store.Key{ID: NewKeyID(), Name: name, Prefix: ShownPrefix(secret), Hash: HashKey(secret),
		Roles: roles, CreatedBy: "gavel", CreatedAt: now.UTC()}
	err = keys.CreateKey(ctx, k)
	if errors.Is(err, store.ErrConflict) {
		// Another replica may have created it a moment ago.
		if got, err2 := keys.KeyByHash(ctx, k.Hash); err2 == nil {
			return got, nil
		}
		k.Name = name + "-" + strings.TrimPrefix(k.ID, "key_")
		err = keys.CreateKey(ctx, k)
	}
	if err != nil {
		return store.Key{}, fmt.Errorf("ensure key %s: %w", name, err)
	}
	return k, nil
}

// keyLookup finds API keys by hash through a small cache: a key looked up
// in the last TTL is not looked up again, and one looked up before stays
// usable (stale) while the store does not answer, so agents keep working
// through a database outage. Concurrent lookups of one key share one query.
type keyLookup struct {
	keys  store.Keys
	ttl   time.Duration
	cache *lru.Cache[string, cachedKey]
	group singleflight.Group
	now   func() time.Time
}

type cachedKey struct {
	key     store.Key
	found   bool
	fetched time.Time
}

func newKeyLookup(keys store.Keys, ttl time.Duration, size int, now func() time.Time) *keyLookup {
	c, _ := lru.New[string, cachedKey](max(size, 1))
	return &keyLookup{keys: keys, ttl: ttl, cache: c, now: now}
}

// errStoreUnavailable: the store did not answer and the key is not cached.
var errStoreUnavailable = errors.New("API keys cannot be checked: the store is unavailable")

// lookup returns the key whose sha256 is hash; found is false for an
// unknown key.
func (l *keyLookup) lookup(ctx context.Context, hash []byte) (store.Key, bool, error) {
	id := string(hash)
	c, cached := l.cache.Get(id)
	if cached && l.ttl > 0 && l.now().Sub(c.fetched) < l.ttl {
		return c.key, c.found, nil
	}
	v, err, _ := l.group.Do(id, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		k, err := l.keys.KeyByHash(ctx, hash)
		switch {
		case err == nil:
			c := cachedKey{key: k, found: true, fetched: l.now()}
			l.cache.Add(id, c)
			return c, nil
		case errors.Is(err, store.ErrNotFound):
			c := cachedKey{fetched: l.now()}
			l.cache.Add(id, c)
			return c, nil
		}
		return nil, err
	})
	if err != nil {
		if cached && c.found {
			// Stale while the store is down: keep serving it for another
			// TTL rather than have every request wait for the store's
			// timeout until the outage ends.
			c.fetched = l.now()
			l.cache.Add(id, c)
			return c.key, true, nil
		}
		return store.Key{}, false, fmt.Errorf("%w: %w", errStoreUnavailable, err)
	}
	c = v.(cachedKey)
	return c.key, c.found, nil
}

// toucher records API key use in the store at most once per interval per
// key, from its own goroutine: the request path only queues (and drops
// when the queue is full; the next use queues again).
type toucher struct {
	keys     store.Keys
	interval time.Duration
	log      *slog.Logger
	queue    chan touch

	mu   sync.Mutex
	last map[string]time.Time
}

type touch struct {
	id string
	at time.Time
}

func newToucher(keys store.Keys, interval time.Duration, log *slog.Logger) *toucher {
	return &toucher{keys: keys, interval: interval, log: log, queue: make(chan touch, 256), last: map[string]time.Time{}}
}

// used notes a use of key id at at.
func (t *toucher) used(id string, at time.Time) {
	t.mu.Lock()
	if last, ok := t.last[id]; ok && at.Sub(last) < t.interval {
		t.mu.Unlock()
		return
	}
	t.last[id] = at
	t.mu.Unlock()
	select {
	case t.queue <- touch{id, at}:
	default:
		t.mu.Lock()
		delete(t.last, id) // not recorded: let the next use try again
		t.mu.Unlock()
	}
}

// run writes queued touches until ctx ends.
func (t *toucher) run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case tc := <-t.queue:
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := t.keys.TouchKey(wctx, tc.id, tc.at); err != nil && ctx.Err() == nil {
				t.log.Warn("API key last-used time not recorded", "key_id", tc.id, "err", err)
			}
			cancel()
		}
	}
}
