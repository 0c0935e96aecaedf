// Package ports is gavel's port discovery registry: services register
// instances (an address and a port, allocated when not given) under leases
// with a TTL, renew them, and release them; expired leases free their ports.
// The xDS controller and the REST API read it through [Registry].
package ports

import (
	"context"
	"errors"
	"regexp"
	"time"
)

// Errors callers branch on. Errors returned by a [Registry] wrap one of them
// with the detail (the service, the port).
var (
	ErrBadService = errors.New("service name must be a DNS label: lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit")
	ErrBadPort    = errors.New("port must be between 1 and 65535 (or 0 to allocate one)")
	ErrBadAddress = errors.New("address must be an IP address of this host")
	ErrBadTTL     = errors.New("ttl out of range")
	ErrPortTaken  = errors.New("port is leased to another instance")
	ErrNotFound   = errors.New("no such lease")
	ErrNoFreePort = errors.New("no free port in the range")
)

// Instance is one registered instance of a service and its lease.
type Instance struct {
	Service string
	// ID identifies the lease; Renew and Release name it.
	ID      string
	Address string
	Port    int
	Labels  map[string]string
	// TTL is how long a renewal without a TTL extends the lease by.
	TTL          time.Duration
	Expires      time.Time
	RegisteredAt time.Time
}

// Request asks for a lease.
type Request struct {
	Service string
	// Address defaults to 127.0.0.1.
	Address string
	// Port 0 allocates a free port; any other is registered as it is.
	Port   int
	Labels map[string]string
	// TTL 0 means the registry's default.
	TTL time.Duration
}

// Registry holds service instances under leases.
type Registry interface {
	Register(ctx context.Context, req Request) (Instance, error)
	// Renew extends a lease by ttl, or by its own TTL when ttl is 0.
	Renew(ctx context.Context, service, id string, ttl time.Duration) (Instance, error)
	Release(ctx context.Context, service, id string) error
	// List returns the live instances sorted by service, then port.
	List(ctx context.Context) ([]Instance, error)
	// Changes is signalled after every change, expiry included. It is
	// buffered (one) and coalescing: a reader that wakes up reads the whole
	// state with List.
	Changes() <-chan struct{}
}

var serviceName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidService reports whether name is a valid service name.
func ValidService(name string) bool {
	return len(name) <= 63 && serviceName.MatchString(name)
}
