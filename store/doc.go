// Package store is gavel's persistence: the audit trail, policy bundles and
// their history, API keys and service registrations, behind small
// interfaces with SQLite and PostgreSQL implementations, and the Redis tier
// that shares decisions and events between replicas (it implements
// policy.SharedCache).
//
// # Implementations
//
// store/sqlite is the embedded default, for one replica: the file
// <data-dir>/gavel.db (mode 0600), pure-Go driver (no cgo), WAL, one writer
// connection and a read pool. Its WatchActivations polls the file.
//
// store/postgres is for several replicas sharing one database: a pgxpool
// (--postgres-max-conns). The audit table is range-partitioned by UTC day
// (audit_pYYYYMMDD, created on demand before a write and for today and
// tomorrow on open); PruneAudit drops whole days and deletes the rest of
// the day the cutoff falls in. Audit batches are COPYed into a staging
// table and inserted with ON CONFLICT (id, time) DO NOTHING, so a replayed
// batch is stored once. Activate notifies on the channel gavel_activations
// in its own transaction; WatchActivations LISTENs on a connection of its
// own, reconnects when it is lost, and also polls, so no activation is
// missed.
//
// Open chooses between them (PostgreSQL when a URL is given). The
// implementations register themselves with Register: import them for that
// side effect. store/storetest is the contract both pass.
//
// # Schemas and migrations
//
// Each implementation embeds its own forward-only goose migrations
// (store/sqlite/migrations, store/postgres/migrations; versions 00001...).
// Tables: audit (and, in SQLite, audit_rules: one row per rule id, for the
// Rule filter; PostgreSQL keeps rule_ids as text[] with a GIN index),
// bundles, activations, api_keys, leases, and goose_db_version. gavel
// migrate applies them, and so does gavel serve on start unless
// --migrate=false, when a database that is behind is refused
// (ErrMigrationNeeded). PostgreSQL replicas migrating at once take turns
// on an advisory lock.
package store
