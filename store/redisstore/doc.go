// Package redisstore is gavel's Redis tier, shared by every replica: the L2
// decision cache ([Cache], a policy.SharedCache) and the cross-replica event
// bus ([Bus], a store.Bus). Redis is optional and never on the critical
// path: a cache error is a miss, an event bus without Redis keeps fanning
// events out inside the process, and every call to Redis goes through the
// circuit breaker named "redis" (store/breaker), so while Redis is down
// callers do not wait on it at all.
package redisstore
