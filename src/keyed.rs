//! Hash maps for the hot paths, keyed by names (JIDs): foldhash rather than the standard
//! SipHash, about a tenth of the instructions for a short key (measured in
//! docs/performance.md), and still seeded at random per map, so nobody can pick names
//! that collide on purpose.

/// How a map hashes its keys: random per instance.
pub type KeyedState = foldhash::quality::RandomState;

/// A `HashMap` with [`KeyedState`].
pub type KeyedMap<K, V> = std::collections::HashMap<K, V, KeyedState>;
