package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/gavel-dev/gavel/policy"
)

// Errors every implementation returns, for callers to branch on with
// errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// Store is gavel's persistence. Implementations: SQLite (the embedded
// default, store/sqlite) and PostgreSQL (store/postgres); one contract
// suite (store/storetest) runs against both. Consumers take the narrowest
// interface they need.
type Store interface {
	Audit
	Bundles
	Keys
	Leases
	// Kind is "sqlite" or "postgres".
	Kind() string
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	Close() error
}

// Audit is the audit trail of decisions.
type Audit interface {
	// WriteAudit stores records. A record whose id (and time) is already
	// stored is skipped, so writing a batch twice stores it once; it
	// returns how many records were new.
	WriteAudit(ctx context.Context, recs []policy.Record) (int, error)
	// Decision is the record with id, or ErrNotFound.
	Decision(ctx context.Context, id string) (policy.Record, error)
	// Decisions lists records, newest first, filtered and paginated.
	Decisions(ctx context.Context, q DecisionQuery) (DecisionPage, error)
	// PruneAudit deletes the records older than before and returns how
	// many went (PostgreSQL drops whole daily partitions).
	PruneAudit(ctx context.Context, before time.Time) (int64, error)
}

// DecisionQuery filters the audit trail. Empty fields match everything.
type DecisionQuery struct {
	Source    string
	Outcome   string
	Principal string
	// Rule matches records whose RuleIDs contain it.
	Rule     string
	Revision string
	// TraceID matches the records of one trace (policy.Record.TraceID).
	TraceID string
	// Since is inclusive, Until exclusive.
	Since, Until time.Time
	// Cursor continues a listing: the Next of the previous page.
	Cursor string
	// Limit defaults to 100 and is at most 1000.
	Limit int
}

// DecisionPage is one page of the audit trail; Next is empty on the last.
type DecisionPage struct {
	Records []policy.Record `json:"records"`
	Next    string          `json:"next,omitempty"`
}

// Bundle is a stored policy bundle.
type Bundle struct {
	Revision string `json:"revision"`
	// Source names where it came from (a file name, "builtin:default").
	Source     string    `json:"source"`
	Size       int       `json:"size"`
	UploadedBy string    `json:"uploaded_by"`
	UploadedAt time.Time `json:"uploaded_at"`
	// Signed reports whether its signature was verified on upload.
	Signed bool `json:"signed"`
	// Tests is how many Rego tests passed on upload.
	Tests int `json:"tests"`
	// Tarball is the bundle as uploaded (.tar.gz); empty in listings.
	Tarball []byte `json:"-"`
}

// Activation makes a revision the one every replica serves.
type Activation struct {
	Seq      int64     `json:"seq"` // increasing, per store
	Revision string    `json:"revision"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
}

// Bundles is the bundle history and which revision is active.
type Bundles interface {
	// PutBundle stores b; storing a revision that exists changes nothing
	// and reports created false.
	PutBundle(ctx context.Context, b Bundle) (created bool, err error)
	// Bundle is the bundle with revision, tarball included, or ErrNotFound.
	Bundle(ctx context.Context, revision string) (Bundle, error)
	// ListBundles lists bundles without tarballs, newest first.
	ListBundles(ctx context.Context) ([]Bundle, error)
	// Activate records that revision is active from now on, and notifies
	// every replica watching (in the same transaction where the database
	// can). An unknown revision is ErrNotFound.
	Activate(ctx context.Context, revision, by string) (Activation, error)
	// Active is the latest activation, or ErrNotFound before the first.
	Active(ctx context.Context) (Activation, error)
	// Activations lists activations, newest first, at most limit.
	Activations(ctx context.Context, limit int) ([]Activation, error)
	// WatchActivations delivers the activations made by any replica after
	// it is called, until ctx ends. A store that cannot push polls.
	WatchActivations(ctx context.Context) (<-chan Activation, error)
}

// Key is an API key. The key itself is never stored: only its sha256.
type Key struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Prefix is the key's first characters, to recognise it in listings.
	Prefix    string    `json:"prefix"`
	Hash      []byte    `json:"-"`
	Roles     []string  `json:"roles"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	LastUsed  time.Time `json:"last_used,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Keys are the API keys.
type Keys interface {
	// CreateKey stores k; a name or hash already in use is ErrConflict.
	CreateKey(ctx context.Context, k Key) error
	// KeyByHash is the key with that sha256, revoked or not, or
	// ErrNotFound.
	KeyByHash(ctx context.Context, hash []byte) (Key, error)
	// ListKeys lists keys, revoked ones included, oldest first.
	ListKeys(ctx context.Context) ([]Key, error)
	// RevokeKey revokes the key with id (or name); ErrNotFound if none.
	RevokeKey(ctx context.Context, idOrName string, at time.Time) error
	// TouchKey records a use; callers coalesce touches.
	TouchKey(ctx context.Context, id string, at time.Time) error
}

// Lease is a port discovery registration.
type Lease struct {
	Service   string            `json:"service"`
	ID        string            `json:"id"`
	Address   string            `json:"address"`
	Port      int               `json:"port"`
	Labels    map[string]string `json:"labels,omitempty"`
	TTL       time.Duration     `json:"ttl"`
	ExpiresAt time.Time         `json:"expires_at"`
}

// Leases persist the port discovery registry.
type Leases interface {
	// PutLease stores or replaces the lease (service, id).
	PutLease(ctx context.Context, l Lease) error
	// DeleteLease removes it; a lease that is not there is not an error.
	DeleteLease(ctx context.Context, service, id string) error
	// ListLeases lists every stored lease, expired ones included.
	ListLeases(ctx context.Context) ([]Lease, error)
}

// Event is something a WebSocket client can watch: a decision, a bundle
// activation, a service registration, a circuit breaker changing state.
type Event struct {
	Type    string          `json:"type"` // decision, activation, registration, breaker
	Time    time.Time       `json:"time"`
	Replica string          `json:"replica"` // which gavel it happened on
	Data    json.RawMessage `json:"data"`
}

// Event types.
const (
	EventDecision     = "decision"
	EventActivation   = "activation"
	EventRegistration = "registration"
	EventBreaker      = "breaker"
)

// Bus fans events out to subscribers, in process or across replicas.
// Publish never blocks on a subscriber: one that cannot keep up is dropped
// and told why (ErrLagged).
type Bus interface {
	Publish(ctx context.Context, e Event) error
	// Subscribe delivers events published after it returns, until ctx ends
	// or the subscription is closed.
	Subscribe(ctx context.Context) Subscription
}

// Subscription is one subscriber's stream of events.
type Subscription interface {
	// Events is closed when the subscription ends; Err then says why.
	Events() <-chan Event
	// Err is nil while the subscription lives; ErrLagged if the
	// subscriber fell behind, the context's error if it ended.
	Err() error
	Close()
}

// ErrLagged ends a subscription whose subscriber did not keep up.
var ErrLagged = errors.New("subscriber fell behind: events were dropped")
