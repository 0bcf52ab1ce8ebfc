//! Per-thread memos of parsed key strings. Parsing a key means decompressing its curve point
//! (about a third of a signature check), and a node parses the same few keys (its peers', its
//! witnesses') in every request and message. Pure memos: the same answer, less work.

use std::cell::RefCell;
use std::collections::HashMap;
use std::thread::LocalKey;

/// A per-thread cache from a key's text to what it parses into.
pub(crate) type TextCache<V> = RefCell<HashMap<String, V>>;

/// Most entries a cache holds; when full it starts again.
const LIMIT: usize = 1024;

/// `parse(text)`, remembered in `cache` (failures are not remembered).
pub(crate) fn by_text<V: Clone, E>(
    cache: &'static LocalKey<TextCache<V>>,
    text: &str,
    parse: impl FnOnce(&str) -> Result<V, E>,
) -> Result<V, E> {
    if let Some(v) = cache.with(|c| c.borrow().get(text).cloned()) {
        return Ok(v);
    }
    let v = parse(text)?;
    cache.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= LIMIT {
            c.clear();
        }
        c.insert(text.to_owned(), v.clone());
    });
    Ok(v)
}
