//! Stored events in their client format, cached per shard, so that an event
//! delivered to many members of a room is read and formatted once per shard
//! instead of once per member.
//!
//! An entry is dropped when a redaction of its event commits, because the
//! room's shard sends every shard the redacted IDs after the commit (see `append`). A shard reads the
//! store and fills its cache without an await in between, so a read made
//! before the redaction's commit is always followed by that drop.

use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    rc::Rc,
};

use serde_json::{Map as JsonMap, Value};

use super::client_format;
use crate::store::{EventRecord, Map, Store, StoreError};

/// Events kept per shard. At an estimated 1 KiB per formatted message, the
/// cache stays near 8 MiB per shard.
const CAPACITY: usize = 8192;

/// A stored event and its client format without `unsigned`.
#[derive(Debug)]
pub struct CachedEvent {
    pub event_id: String,
    pub record: EventRecord,
    /// The client-format fields, redacted when a redaction applies.
    pub client: JsonMap<String, Value>,
}

/// The cache of one shard, evicting the oldest entries first.
#[derive(Default)]
pub struct EventCache {
    entries: RefCell<HashMap<String, Rc<CachedEvent>>>,
    /// Keys in insertion order. A key dropped and read back appears twice,
    /// and removing it at its older place only costs a later miss.
    order: RefCell<VecDeque<String>>,
}

impl EventCache {
    /// Returns the event `event_id`, reading it from `store` on a miss, or
    /// `None` if the store does not contain it.
    ///
    /// # Errors
    ///
    /// Returns a storage error.
    pub fn get(
        &self,
        store: &Store,
        event_id: &str,
    ) -> Result<Option<Rc<CachedEvent>>, StoreError> {
        if let Some(event) = self.entries.borrow().get(event_id) {
            return Ok(Some(event.clone()));
        }
        let Some(record) = store.get_json::<EventRecord>(Map::Events, event_id.as_bytes())? else {
            return Ok(None);
        };
        let event = Rc::new(CachedEvent {
            client: client_format::fields(event_id, &record),
            event_id: event_id.to_owned(),
            record,
        });
        self.insert(event.clone());
        Ok(Some(event))
    }

    /// Drops `event_id`, after a change to its stored record.
    pub fn evict(&self, event_id: &str) {
        self.entries.borrow_mut().remove(event_id);
    }

    fn insert(&self, event: Rc<CachedEvent>) {
        let mut entries = self.entries.borrow_mut();
        let mut order = self.order.borrow_mut();
        while entries.len() >= CAPACITY {
            let Some(oldest) = order.pop_front() else {
                break;
            };
            entries.remove(&oldest);
        }
        // Keys dropped by `evict` stay in `order` until they reach its front.
        // Pruning them keeps `order` bounded when redactions are frequent.
        if order.len() >= 2 * CAPACITY {
            order.retain(|key| entries.contains_key(key));
        }
        order.push_back(event.event_id.clone());
        entries.insert(event.event_id.clone(), event);
    }
}
