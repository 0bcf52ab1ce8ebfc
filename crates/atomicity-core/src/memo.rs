//! Per-thread memos of parsed keys. Parsing a key (its 32 bytes or its text) means
//! decompressing its curve point (about a third of a signature check), and a node parses the
//! same few keys (its peers', its witnesses') in every request and message. Pure memos: the
//! same answer, less work.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::thread::LocalKey;

/// A per-thread cache from what was parsed to what it parsed into.
pub(crate) type Cache<K, V> = RefCell<HashMap<K, V>>;

/// A cache keyed by text.
pub(crate) type TextCache<V> = Cache<String, V>;

/// Most entries a cache holds; when full it starts again.
const LIMIT: usize = 4096;

/// `parse(input)`, remembered in `cache` (failures are not remembered).
pub(crate) fn memoized<K, Q, V, E>(
    cache: &'static LocalKey<Cache<K, V>>,
    input: &Q,
    parse: impl FnOnce(&Q) -> Result<V, E>,
) -> Result<V, E>
where
    K: Borrow<Q> + Eq + Hash,
    Q: ToOwned<Owned = K> + Eq + Hash + ?Sized,
    V: Clone,
{
    if let Some(v) = cache.with(|c| c.borrow().get(input).cloned()) {
        return Ok(v);
    }
    let v = parse(input)?;
    cache.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= LIMIT {
            c.clear();
        }
        c.insert(input.to_owned(), v.clone());
    });
    Ok(v)
}
