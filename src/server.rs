//! Server lifecycle: start the store, the commit threads and the shards.
//! On SIGINT or SIGTERM, stop accepting, finish in-flight requests and
//! writes, and sync the store.

use std::{
    rc::Rc,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use eltrix_shards::{ExecutorOptions, Mesh, ShardTask, spawn_executors};
use signal_hook::{
    consts::{SIGINT, SIGTERM},
    iterator::Signals,
};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{
    auth::password::PasswordWorker,
    config::Config,
    room::keys::SigningKey,
    shard::{Shard, ShardParts, now_micros},
    store::{Committer, Map, Store},
};

/// Time allowed for in-flight requests after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the server until a shutdown signal.
///
/// # Errors
///
/// Returns an error if the data directory, store, signing key or threads
/// cannot be set up.
pub fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    disable_huge_pages();
    let nr_shards = config.nr_shards();
    std::fs::create_dir_all(&config.data_dir)?;
    let store = Store::open(&config.data_dir)?;
    let key = Arc::new(SigningKey::load_or_create(&config.data_dir)?);
    tracing::info!(key_id = %format!("ed25519:{}", key.pair.version()), public_key = key.public_base64, "signing key loaded");
    let boot_pos = boot_position(&store)?;
    if config.registration == crate::config::RegistrationMode::Open
        && !config.listen.ip().is_loopback()
    {
        tracing::warn!(listen = %config.listen, "registration is open on a non-loopback address");
    }

    ensure_port_free(config.listen)?;
    let federation_tls = match (
        config.federation.listen,
        &config.federation.tls_certificate,
        &config.federation.tls_private_key,
    ) {
        (Some(listen), Some(certificate), Some(private_key)) => {
            ensure_port_free(listen)?;
            Some(crate::http::server_acceptor(certificate, private_key)?)
        }
        _ => None,
    };
    let client_tls = crate::http::client_config(config.federation.verify_certificates)?;

    let (mesh, inboxes) = Mesh::<Shard>::new(nr_shards);
    let config = Arc::new(config);
    let mut parts = Vec::new();
    // The embedded store has one journal, and fjall holds the journal's lock
    // through each sync, so one commit thread groups the writes of every
    // shard into one sync instead of shards queueing behind each other's.
    let (committer, commit_thread) = Committer::start(store.clone())?;
    for (id, inbox) in inboxes.into_iter().enumerate() {
        let shard = ShardParts {
            id,
            federation_tls: federation_tls.clone(),
            client_tls: client_tls.clone(),
            mesh: mesh.clone(),
            store: store.clone(),
            committer: committer.clone(),
            config: config.clone(),
            key: key.clone(),
            passwords: PasswordWorker::start(id)?,
            boot_pos,
        };
        parts.push(Some((shard, inbox)));
    }
    let parts = Arc::new(Mutex::new(parts));

    let options = ExecutorOptions {
        nr_shards,
        pin_to_cores: config.pin_cores,
        ring_entries: 1024,
    };
    let executors = spawn_executors(&options, move |id| {
        let taken = parts
            .lock()
            .ok()
            .and_then(|mut parts| parts.get_mut(id).and_then(Option::take));
        async move {
            if let Some((shard, inbox)) = taken {
                run_shard(shard, inbox).await;
            }
        }
    })?;
    tracing::info!(
        listen = %config.listen,
        federation_listen = ?config.federation.listen,
        shards = nr_shards,
        server_name = config.server_name,
        startup_ms = started.elapsed().as_millis(),
        "eltrix started"
    );

    wait_for_signal()?;
    tracing::info!("shutdown started");
    for id in 0..nr_shards {
        let task: ShardTask<Shard> = Box::new(|shard: Rc<Shard>| {
            Box::pin(async move {
                shard.stopping.set(true);
                shard.stop.notify_waiters();
                shard.sync.borrow_mut().wake_all();
            })
        });
        let _ = mesh.send(id, task);
    }
    for executor in executors {
        let _ = executor.join();
    }
    drop(mesh);
    committer.stop();
    let _ = commit_thread.join();
    store.persist()?;
    tracing::info!("shutdown complete");
    Ok(())
}

async fn run_shard(mut parts: ShardParts, mut inbox: UnboundedReceiver<ShardTask<Shard>>) {
    let listen = parts.config.listen;
    let federation = parts
        .federation_tls
        .take()
        .zip(parts.config.federation.listen);
    let limits = crate::http::Limits {
        max_body: parts.config.max_request_bytes,
        idle_timeout: Duration::from_secs(parts.config.idle_timeout_secs),
        request_timeout: Duration::from_secs(parts.config.request_timeout_secs),
    };
    let shard = Rc::new(Shard::new(parts));

    let inbox_shard = shard.clone();
    monoio::spawn(async move {
        while let Some(task) = inbox.recv().await {
            inbox_shard.metrics.record_cross_shard_task(inbox.len());
            let shard = inbox_shard.clone();
            shard.tasks_running.set(shard.tasks_running.get() + 1);
            monoio::spawn(async move {
                task(shard.clone()).await;
                shard.tasks_running.set(shard.tasks_running.get() - 1);
            });
        }
    });

    let stop = shard.stop.notified();
    let handler_shard = shard.clone();
    let handler = Rc::new(move |request| crate::api::serve(handler_shard.clone(), request));
    if let Some((acceptor, address)) = federation {
        let (shard, handler) = (shard.clone(), handler.clone());
        monoio::spawn(async move {
            let stop = shard.stop.notified();
            let listening = crate::http::listen(address, limits, Some(acceptor), handler, stop);
            if let Err(error) = listening.await {
                tracing::error!(shard_id = shard.id, %address, %error, "failed to listen for federation");
                std::process::exit(1);
            }
        });
    }
    if let Err(error) = crate::http::listen(listen, limits, None, handler, stop).await {
        tracing::error!(shard_id = shard.id, %listen, %error, "failed to listen");
        std::process::exit(1);
    }

    let deadline = Instant::now() + DRAIN_TIMEOUT;
    // Requests accepted here may wait on other shards, and tasks running
    // here serve requests accepted elsewhere, so a shard stays up until both
    // are done.
    while (shard.in_flight.get() > 0 || shard.tasks_running.get() > 0) && Instant::now() < deadline
    {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::info!(shard_id = shard.id, "shard stopped");
}

/// Returns a position above every one persisted, so the frontier of a fresh start
/// covers all stored events and new events sort after them.
fn boot_position(store: &Store) -> Result<u64, crate::store::StoreError> {
    let mut highest = 0u64;
    for (_, value) in store.scan_prefix(Map::Meta, b"hlc/")? {
        if let Ok(bytes) = <[u8; 8]>::try_from(value.as_slice()) {
            highest = highest.max(u64::from_be_bytes(bytes));
        }
    }
    Ok(now_micros().max(highest + 1))
}

/// Fails if another process listens on `addr`. Shards bind with
/// `SO_REUSEPORT`, which would otherwise let a second server silently share
/// the port with a running one.
fn ensure_port_free(addr: std::net::SocketAddr) -> std::io::Result<()> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => Err(std::io::Error::new(
            error.kind(),
            format!("{addr} is already in use; stop the other server or set --listen"),
        )),
        Err(error) => Err(error),
    }
}

fn wait_for_signal() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let _ = signals.forever().next();
    Ok(())
}

/// Turns transparent huge pages off for this process. mimalloc requests
/// them for its large regions, so the first touch of each zeroes 2 MiB
/// while a shard waits. With them, 64 concurrent senders measured a send
/// p99 of 9.3 to 9.6 ms, and without them 4.4 to 4.6 ms at the same
/// throughput (`docs/benchmarks.md`).
fn disable_huge_pages() {
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!(%error, "failed to turn transparent huge pages off; latency may suffer");
    }
}
