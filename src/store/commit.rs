//! Group commit: one thread per shard applies write batches and makes them
//! durable with a single `fdatasync` for everything that queued up while the
//! previous sync ran.
//!
//! Batches are applied, synced and acknowledged in the order they were
//! submitted. Each batch may carry a publish step that runs on the commit
//! thread after the sync and before the acknowledgement, so whatever it
//! announces (new events, to other shards) is durable and announced in
//! commit order.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
};

use tokio::sync::oneshot;

use super::{Map, Store, StoreError};

/// Runs after a batch is durable, on the commit thread.
pub type PublishStep = Box<dyn FnOnce() + Send>;

/// Writes applied atomically.
#[derive(Default)]
pub struct WriteBatch {
    /// Number of events in the batch, for metrics.
    pub events: usize,
    ops: Vec<(Map, Vec<u8>, Option<Vec<u8>>)>,
    publish: Vec<PublishStep>,
}

impl WriteBatch {
    /// Queues an insert of `value` under `key`.
    pub fn put(&mut self, map: Map, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((map, key, Some(value)));
    }

    /// Queues an insert of `value` encoded as JSON.
    pub fn put_json<T: serde::Serialize>(&mut self, map: Map, key: Vec<u8>, value: &T) {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.put(map, key, bytes);
    }

    /// Queues a removal of `key`.
    pub fn delete(&mut self, map: Map, key: Vec<u8>) {
        self.ops.push((map, key, None));
    }

    /// Adds a step to run once the batch is durable.
    pub fn after_commit(&mut self, step: PublishStep) {
        self.publish.push(step);
    }
}

struct Pending {
    batch: WriteBatch,
    reply: oneshot::Sender<Result<(), String>>,
}

enum Message {
    Commit(Pending),
    /// Ends the thread after every batch queued before it.
    Stop,
}

/// The sending side of the commit thread.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<Message>,
    /// Cleared when the thread exits.
    running: Arc<AtomicBool>,
}

impl Committer {
    /// Starts the commit thread of `store`.
    ///
    /// # Errors
    ///
    /// Returns the OS error if the thread cannot be spawned.
    pub fn start(store: Store) -> std::io::Result<(Self, thread::JoinHandle<()>)> {
        let (queue, receiver) = mpsc::channel();
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let handle = thread::Builder::new()
            .name("commit".to_owned())
            .spawn(move || {
                let _running = ClearOnDrop(flag);
                run(&store, &receiver);
            })?;
        Ok((Self { queue, running }, handle))
    }

    /// Applies `batch` and waits until it is on disk.
    ///
    /// # Errors
    ///
    /// Returns an error if the engine fails to write or sync, or the commit
    /// thread has stopped.
    pub async fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        self.queue
            .send(Message::Commit(Pending { batch, reply }))
            .map_err(|_| StoreError::CommitterStopped)?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StoreError::Engine(fjall::Error::Io(std::io::Error::other(
                message,
            )))),
            Err(_) => Err(StoreError::CommitterStopped),
        }
    }

    /// Returns whether the commit thread is still running.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Asks the thread to exit once the batches queued so far are durable.
    pub fn stop(&self) {
        let _ = self.queue.send(Message::Stop);
    }
}

/// Clears the running flag when the commit thread ends, by return or panic.
struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Maximum batches folded into one sync.
const MAX_GROUP: usize = 512;

fn run(store: &Store, receiver: &mpsc::Receiver<Message>) {
    let mut stopping = false;
    while !stopping {
        let Ok(Message::Commit(first)) = receiver.recv() else {
            break;
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(Message::Commit(next)) => group.push(next),
                Ok(Message::Stop) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let result = write_group(store, &mut group);
        if let Err(error) = &result {
            tracing::error!(%error, batches = group.len(), "group commit failed");
        }
        for pending in group {
            if result.is_ok() {
                for step in pending.batch.publish {
                    step();
                }
            }
            let _ = pending
                .reply
                .send(result.clone().map_err(|e| e.to_string()));
        }
    }
    tracing::debug!("commit thread stopped");
}

fn write_group(store: &Store, group: &mut [Pending]) -> Result<(), String> {
    let mut batch = store.database().batch();
    for pending in group.iter_mut() {
        for (map, key, value) in pending.batch.ops.drain(..) {
            match value {
                Some(value) => batch.insert(store.map(map), key, value),
                None => batch.remove(store.map(map), key),
            }
        }
    }
    batch.commit().map_err(|e| e.to_string())?;
    store.persist().map_err(|e| e.to_string())
}
