//! Starting one pinned executor thread per shard.
//!
//! Each executor is a monoio runtime on the fusion driver: io_uring where the
//! kernel allows it, epoll where io_uring is blocked (for example by a
//! container's seccomp profile), so the server starts in either case.

use std::{future::Future, io, thread};

use monoio::{FusionDriver, FusionRuntime, RuntimeBuilder};

use crate::ShardId;

/// Executor start options.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Number of executors, one per shard.
    pub nr_shards: usize,
    /// Pin executor `i` to core `i mod cores`.
    pub pin_to_cores: bool,
    /// io_uring submission queue entries per executor.
    pub ring_entries: u32,
}

/// Spawns `options.nr_shards` executor threads, each running the future
/// returned by `shard_main(shard_id)`, and returns their join handles.
///
/// # Errors
///
/// Returns the OS error if a thread cannot be spawned.
pub fn spawn_executors<F, Fut>(
    options: &ExecutorOptions,
    shard_main: F,
) -> io::Result<Vec<thread::JoinHandle<()>>>
where
    F: Fn(ShardId) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    (0..options.nr_shards)
        .map(|shard_id| {
            let shard_main = shard_main.clone();
            let core = cores.get(shard_id % cores.len().max(1)).copied();
            let pin = options.pin_to_cores;
            let entries = options.ring_entries;
            thread::Builder::new()
                .name(format!("shard-{shard_id}"))
                .spawn(move || {
                    if let (true, Some(core)) = (pin, core)
                        && !core_affinity::set_for_current(core)
                    {
                        tracing::warn!(shard_id, core = core.id, "failed to pin executor to core");
                    }
                    run_executor(shard_id, entries, shard_main(shard_id));
                })
        })
        .collect()
}

fn run_executor(shard_id: ShardId, entries: u32, future: impl Future<Output = ()>) {
    let runtime = RuntimeBuilder::<FusionDriver>::new()
        .with_entries(entries)
        .enable_timer()
        .build();
    match runtime {
        Ok(FusionRuntime::Uring(mut runtime)) => {
            tracing::info!(shard_id, driver = "io_uring", "shard up");
            runtime.block_on(future);
        }
        Ok(FusionRuntime::Legacy(mut runtime)) => {
            tracing::info!(
                shard_id,
                driver = "epoll",
                "shard up; io_uring is unavailable"
            );
            runtime.block_on(future);
        }
        Err(error) => {
            tracing::error!(shard_id, %error, "failed to start executor");
            std::process::exit(1);
        }
    }
}
