// Package store is gavel's persistence: the audit trail, policy bundles and
// their history, API keys and service registrations, behind small
// interfaces with SQLite and PostgreSQL implementations, and the Redis tier
// that shares decisions and events between replicas (it implements
// policy.SharedCache).
package store
