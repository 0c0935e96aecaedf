package redisstore

import (
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ClientOptions name the Redis server.
type ClientOptions struct {
	Addr     string // host:port
	Password string
	DB       int
}

// NewClient returns a client for gavel's use of Redis: the caller's context
// deadline bounds every call (the cache's are a few milliseconds), the
// client itself never retries (the breaker and the callers decide), and a
// failed dial is tried once, not five times.
func NewClient(o ClientOptions) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  o.Addr,
		Password:              o.Password,
		DB:                    o.DB,
		MaxRetries:            -1,
		DialTimeout:           time.Second,
		DialerRetries:         1,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		ContextTimeoutEnabled: true,
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
}
