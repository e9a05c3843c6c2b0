//! Setup shared by the scenarios: registering users, creating and joining
//! rooms in parallel, and reusing them through the `--state` file.

use std::{
    path::PathBuf,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

use crate::{
    matrix::{ApiError, Client, RegistrationAuth, Session},
    report::SetupReport,
    state::{self, State},
    target::Target,
};

/// Stack size of worker threads. They parse JSON of bounded depth and keep
/// their buffers on the heap, so a small stack lets a run start a thousand
/// workers.
pub const WORKER_STACK_BYTES: usize = 128 * 1024;

/// Attempts of a setup request that the server rate-limits with 429.
const MAX_ATTEMPTS: u32 = 10;
/// Wait before retrying a 429 response that has no `retry_after_ms`.
const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);
/// Maximum wait before retrying a 429 response, whatever `retry_after_ms`
/// requests.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// Settings that every scenario with accounts shares.
#[derive(Debug, Clone)]
pub struct Context {
    pub url: String,
    pub target: Target,
    pub timeout: Duration,
    pub seed: u64,
    pub auth: RegistrationAuth,
    pub user_prefix: String,
    pub state_path: Option<PathBuf>,
}

impl Context {
    pub fn client(&self) -> Client {
        Client::new(&self.target, self.timeout)
    }
}

/// Users and rooms of a run. What the scenario did to them in setup (joins,
/// seeded messages) is implied by the scenario and its setup options.
#[derive(Debug, Clone)]
pub struct World {
    pub users: Vec<Session>,
    pub rooms: Vec<String>,
}

/// Loads the world from the `--state` file when it exists and fits this run,
/// else runs `create` and writes the state file when one is given.
pub fn load_or_create(
    ctx: &Context,
    scenario: &'static str,
    setup: &Value,
    create: impl FnOnce() -> Result<World, String>,
) -> Result<(World, SetupReport), String> {
    let start = Instant::now();
    let loaded = match &ctx.state_path {
        Some(path) => state::load(path)?,
        None => None,
    };
    let reused_state = loaded.is_some();
    let world = if let Some(saved) = loaded {
        let path = ctx.state_path.as_deref().unwrap_or_else(|| "".as_ref());
        saved
            .check_fits(&ctx.url, scenario, setup)
            .map_err(|reason| format!("cannot reuse {}: {reason}", path.display()))?;
        check_token(ctx, &saved.users[0])?;
        eprintln!(
            "reusing {} users and {} rooms from {}",
            saved.users.len(),
            saved.rooms.len(),
            path.display()
        );
        World {
            users: saved.users,
            rooms: saved.rooms,
        }
    } else {
        let world = create()?;
        if let Some(path) = &ctx.state_path {
            let saved = State::new(
                &ctx.url,
                scenario,
                setup.clone(),
                world.users.clone(),
                world.rooms.clone(),
            );
            state::save(path, &saved)?;
            eprintln!("wrote the users and rooms to {}", path.display());
        }
        world
    };
    let report = SetupReport {
        reused_state,
        seconds: start.elapsed().as_secs_f64(),
        users: world.users.len(),
        room_ids: world.rooms.clone(),
    };
    Ok((world, report))
}

/// Fails early, with a clear message, when the server no longer accepts the
/// saved access tokens (for example after its data directory was removed).
fn check_token(ctx: &Context, session: &Session) -> Result<(), String> {
    match ctx.client().whoami(&session.access_token) {
        Ok(user_id) if user_id == session.user_id => Ok(()),
        Ok(user_id) => Err(format!(
            "the saved token of {} belongs to {user_id}; delete the state file",
            session.user_id
        )),
        Err(error) => Err(format!(
            "the server rejected the saved token of {}: {error}; delete the state file",
            session.user_id
        )),
    }
}

/// Returns the usernames of this run: `PREFIX-SEED-MILLIS-N`, where MILLIS is
/// the Unix time in milliseconds at the start, so that runs do not collide.
pub fn usernames(prefix: &str, seed: u64, unix_ms: u128, count: u32) -> Vec<String> {
    (0..count)
        .map(|n| format!("{prefix}-{seed}-{unix_ms}-{n}"))
        .collect()
}

/// Returns the Unix time in milliseconds, or 0 before 1970.
pub fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis())
}

/// Registers `count` users with `concurrency` parallel connections.
pub fn register_users(ctx: &Context, count: u32, concurrency: u32) -> Result<Vec<Session>, String> {
    let names = usernames(&ctx.user_prefix, ctx.seed, unix_millis(), count);
    let sessions = parallel_map(
        ctx,
        &names,
        concurrency,
        |client, name| client.register(name, &ctx.auth),
        |name| format!("registering {name:?}"),
    )?;
    eprintln!("registered {} users", sessions.len());
    Ok(sessions)
}

/// Creates `count` public rooms as `creator`; returns their IDs in order.
pub fn create_rooms(
    ctx: &Context,
    creator: &Session,
    count: u32,
    concurrency: u32,
) -> Result<Vec<String>, String> {
    let numbers: Vec<u32> = (0..count).collect();
    let room_ids = parallel_map(
        ctx,
        &numbers,
        concurrency,
        |client, n| client.create_public_room(&creator.access_token, &format!("loadtest room {n}")),
        |n| format!("{} creating room {n}", creator.user_id),
    )?;
    eprintln!("{} created {} room(s)", creator.user_id, room_ids.len());
    Ok(room_ids)
}

/// Joins each `(user index, room index)` pair.
pub fn join_pairs(
    ctx: &Context,
    users: &[Session],
    rooms: &[String],
    pairs: &[(usize, usize)],
    concurrency: u32,
) -> Result<(), String> {
    parallel_map(
        ctx,
        pairs,
        concurrency,
        |client, &(user, room)| client.join(&users[user].access_token, &rooms[room]),
        |&(user, room)| format!("{} joining {}", users[user].user_id, rooms[room]),
    )?;
    eprintln!("made {} joins", pairs.len());
    Ok(())
}

/// Returns the pairs that join every user but the first (the creator) to
/// every room.
pub fn all_joins(users: usize, rooms: usize) -> Vec<(usize, usize)> {
    (1..users)
        .flat_map(|user| (0..rooms).map(move |room| (user, room)))
        .collect()
}

/// Runs `call` on every item with `concurrency` threads, each with its own
/// connection, and returns the results in item order. Stops at the first
/// error, which it returns with the context that `describe` gives. A 429
/// response is retried after the wait in its `retry_after_ms`.
pub fn parallel_map<T: Sync, R: Send>(
    ctx: &Context,
    items: &[T],
    concurrency: u32,
    call: impl Fn(&mut Client, &T) -> Result<R, ApiError> + Sync,
    describe: impl Fn(&T) -> String + Sync,
) -> Result<Vec<R>, String> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    let threads = usize::try_from(concurrency.max(1))
        .unwrap_or(1)
        .min(items.len().max(1));

    let work = || {
        let mut client = ctx.client();
        while !failed.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(index) else { break };
            match with_retries(|| call(&mut client, item)) {
                Ok(result) => lock(&results)[index] = Some(result),
                Err(error) => {
                    failed.store(true, Ordering::Relaxed);
                    lock(&first_error).get_or_insert_with(|| {
                        format!("setup failed: {}: {error}", describe(item))
                    });
                }
            }
        }
    };
    thread::scope(|scope| -> Result<(), String> {
        let handles = (0..threads)
            .map(|_| {
                thread::Builder::new()
                    .stack_size(WORKER_STACK_BYTES)
                    .spawn_scoped(scope, work)
                    .map_err(|error| format!("failed to start a setup thread: {error}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for handle in handles {
            handle
                .join()
                .map_err(|_| "a setup thread panicked".to_owned())?;
        }
        Ok(())
    })?;

    if let Some(error) = lock(&first_error).take() {
        return Err(error);
    }
    let results = results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(results.into_iter().flatten().collect())
}

/// Calls `call` until it succeeds, fails with anything but 429, or has been
/// tried `MAX_ATTEMPTS` times.
fn with_retries<R>(mut call: impl FnMut() -> Result<R, ApiError>) -> Result<R, ApiError> {
    let mut attempt = 1;
    loop {
        match call() {
            Err(ApiError::Status {
                status: 429,
                retry_after_ms,
                ..
            }) if attempt < MAX_ATTEMPTS => {
                let delay = retry_after_ms
                    .map_or(DEFAULT_RETRY_DELAY, Duration::from_millis)
                    .min(MAX_RETRY_DELAY);
                thread::sleep(delay);
                attempt += 1;
            }
            result => return result,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking setup thread is reported by `join`; its data stays usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::{all_joins, usernames, with_retries};
    use crate::matrix::{ApiError, status_error};

    #[test]
    fn usernames_are_distinct_lowercase() {
        let names = usernames("loadtest", 42, 1_767_225_600_000, 3);
        assert_eq!(
            names,
            [
                "loadtest-42-1767225600000-0",
                "loadtest-42-1767225600000-1",
                "loadtest-42-1767225600000-2"
            ]
        );
    }

    #[test]
    fn all_joins_skip_the_creator() {
        assert_eq!(all_joins(3, 2), [(1, 0), (1, 1), (2, 0), (2, 1)]);
        assert!(all_joins(1, 5).is_empty());
    }

    #[test]
    fn retries_rate_limited_calls_only() {
        let calls = Cell::new(0);
        let result = with_retries(|| {
            calls.set(calls.get() + 1);
            if calls.get() < 3 {
                Err(status_error(
                    429,
                    br#"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":1}"#,
                ))
            } else {
                Ok(calls.get())
            }
        });
        assert_eq!(result.unwrap(), 3);

        calls.set(0);
        let forbidden: Result<(), ApiError> = with_retries(|| {
            calls.set(calls.get() + 1);
            Err(status_error(403, br#"{"errcode":"M_FORBIDDEN"}"#))
        });
        assert_eq!(forbidden.unwrap_err().label(), "M_FORBIDDEN");
        assert_eq!(calls.get(), 1);
    }
}
