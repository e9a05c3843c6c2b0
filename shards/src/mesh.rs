//! Cross-shard task channels.
//!
//! Every shard has one inbox. Another shard reaches it by submitting a
//! closure: the closure is `Send`, crosses the channel, and runs on the owning
//! shard with that shard's local state, where it may create a `!Send` future.
//! The result comes back over a oneshot channel. This is the only way shards
//! talk, so shard state needs no locks.

use std::{future::Future, pin::Pin, rc::Rc};

use tokio::sync::{mpsc, oneshot};

use crate::ShardId;

/// A unit of work sent to a shard: it receives the shard's local state.
pub type ShardTask<S> = Box<dyn FnOnce(Rc<S>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// The senders to every shard's inbox, cloned into each shard.
pub struct Mesh<S> {
    inboxes: Vec<mpsc::UnboundedSender<ShardTask<S>>>,
}

impl<S> Clone for Mesh<S> {
    fn clone(&self) -> Self {
        Self {
            inboxes: self.inboxes.clone(),
        }
    }
}

/// Failure to run a task on another shard.
#[derive(Debug)]
pub enum SubmitError {
    /// The target shard has stopped, so its inbox is closed.
    ShardStopped(ShardId),
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ShardStopped(id) => write!(f, "shard {id} has stopped"),
        }
    }
}

impl std::error::Error for SubmitError {}

impl<S: 'static> Mesh<S> {
    /// Creates the inboxes of `nr_shards` shards, returning the mesh and
    /// each shard's receiving end, in shard order.
    #[must_use]
    pub fn new(nr_shards: usize) -> (Self, Vec<mpsc::UnboundedReceiver<ShardTask<S>>>) {
        let (inboxes, receivers) = (0..nr_shards).map(|_| mpsc::unbounded_channel()).unzip();
        (Self { inboxes }, receivers)
    }

    /// Number of shards in the mesh.
    #[must_use]
    pub fn nr_shards(&self) -> usize {
        self.inboxes.len()
    }

    /// Runs `task` on shard `target` and returns its output.
    ///
    /// # Errors
    ///
    /// Returns [`SubmitError::ShardStopped`] if the target shard has exited or
    /// dropped the task without running it to completion.
    pub async fn submit_to<F, Fut, R>(&self, target: ShardId, task: F) -> Result<R, SubmitError>
    where
        F: FnOnce(Rc<S>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let boxed: ShardTask<S> = Box::new(move |state| {
            Box::pin(async move {
                let output = task(state).await;
                let _ = reply.send(output);
            })
        });
        self.send(target, boxed)?;
        result.await.map_err(|_| SubmitError::ShardStopped(target))
    }

    /// Queues `task` on shard `target` without waiting for it to run.
    ///
    /// # Errors
    ///
    /// Returns [`SubmitError::ShardStopped`] if the target shard has exited.
    pub fn send(&self, target: ShardId, task: ShardTask<S>) -> Result<(), SubmitError> {
        self.inboxes
            .get(target)
            .ok_or(SubmitError::ShardStopped(target))?
            .send(task)
            .map_err(|_| SubmitError::ShardStopped(target))
    }
}
