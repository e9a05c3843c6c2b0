//! Outbound transactions: each shard keeps one queue of PDUs per
//! destination and sends them in order, at most 50 per transaction, with
//! one transaction in flight per destination.
//!
//! NOTE: the queues live in memory only, so events not yet sent when the
//! server stops are not sent after a restart, and a destination that stays
//! unreachable through every retry loses the events queued for it.

use std::{
    cell::{Cell, RefCell},
    collections::{HashMap, VecDeque},
    rc::Rc,
    time::Duration,
};

use serde_json::{Value, json};

use super::client;
use crate::shard::{Shard, now_micros, now_millis};

/// Most PDUs per transaction, per the specification.
const MAX_PDUS: usize = 50;
/// Attempts per transaction before its events are dropped.
const ATTEMPTS: u32 = 6;
/// Wait after the first failed attempt; it doubles after each further one.
const FIRST_RETRY: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Queue {
    pending: VecDeque<Value>,
    sending: bool,
}

/// A shard's outbound queues.
#[derive(Default)]
pub struct Outbound {
    queues: RefCell<HashMap<String, Queue>>,
    transactions: Cell<u64>,
}

/// Queues `pdus` for every server in `destinations` and starts sending to
/// those that have no transaction in flight.
pub fn enqueue(shard: &Rc<Shard>, destinations: &[String], pdus: &[Value]) {
    for destination in destinations {
        let start = {
            let mut queues = shard.outbound.queues.borrow_mut();
            let queue = queues.entry(destination.clone()).or_default();
            queue.pending.extend(pdus.iter().cloned());
            !std::mem::replace(&mut queue.sending, true)
        };
        if start {
            monoio::spawn(drain(shard.clone(), destination.clone()));
        }
    }
}

/// Sends the queue of `destination` until it is empty.
async fn drain(shard: Rc<Shard>, destination: String) {
    loop {
        let batch: Vec<Value> = {
            let mut queues = shard.outbound.queues.borrow_mut();
            let Some(queue) = queues.get_mut(&destination) else {
                return;
            };
            if queue.pending.is_empty() {
                queue.sending = false;
                return;
            }
            let take = queue.pending.len().min(MAX_PDUS);
            queue.pending.drain(..take).collect()
        };
        let counter = shard.outbound.transactions.get() + 1;
        shard.outbound.transactions.set(counter);
        let txn_id = format!("{}-{}-{counter}", now_micros(), shard.id);
        let body = json!({
            "origin": shard.config.server_name,
            "origin_server_ts": now_millis(),
            "pdus": batch,
            "edus": [],
        });
        send_with_retries(&shard, &destination, &txn_id, &body).await;
    }
}

async fn send_with_retries(shard: &Shard, destination: &str, txn_id: &str, body: &Value) {
    let uri = format!("/_matrix/federation/v1/send/{txn_id}");
    let mut wait = FIRST_RETRY;
    for attempt in 1..=ATTEMPTS {
        match client::request(shard, destination, "PUT", &uri, Some(body), true).await {
            Ok(response) if response.status == 200 => return,
            Ok(response) => tracing::info!(
                destination,
                txn_id,
                attempt,
                status = response.status,
                body = %String::from_utf8_lossy(&response.body),
                "transaction refused"
            ),
            Err(error) => {
                tracing::info!(destination, txn_id, attempt, %error, "transaction failed")
            }
        }
        if attempt < ATTEMPTS {
            monoio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    tracing::warn!(
        destination,
        txn_id,
        "dropped a transaction after {ATTEMPTS} attempts"
    );
}
