package policy

// CacheKeyOf exposes the cache key of in for ep to the external benchmarks.
func CacheKeyOf(e *Engine, ep *EntryPoint, in Input) (Key, error) {
	return cacheKey(e.revision, ep.Path, ep.Config.CacheKey, in)
}
