//! `eltrix --create-admin USERNAME`: writes a server admin account into the
//! data directory while the server is stopped, so the first admin can log
//! in and use the admin API.

use std::{
    io::{BufRead, IsTerminal},
    path::{Path, PathBuf},
};

use super::account;
use crate::{
    auth::password::PasswordWorker,
    config::Config,
    store::{Committer, Map, Store, StoreError, WriteBatch},
};

/// Failure of `--create-admin`.
#[derive(Debug, thiserror::Error)]
pub enum CreateAdminError {
    #[error("failed to read the password from {source_name}: {error}")]
    ReadPassword {
        source_name: String,
        error: std::io::Error,
    },
    #[error(
        "standard input is a terminal; pipe the password in or pass --password-file, \
         so that it is not echoed"
    )]
    PasswordFromTerminal,
    #[error("the password is empty")]
    EmptyPassword,
    #[error("failed to create data directory {path}: {error}")]
    DataDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("invalid username {username:?}: {reason}")]
    InvalidUsername { username: String, reason: String },
    #[error("{0} already exists")]
    UserExists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("failed to start a worker thread: {0}")]
    Thread(std::io::Error),
    #[error("hashing the password failed")]
    Hashing,
}

/// Reads the password from the first line of `file`, or of standard input
/// when no file is given. The line ending is not part of the password.
///
/// # Errors
///
/// Returns an error if the source cannot be read, standard input is a
/// terminal, or the password is empty.
pub fn read_password(file: Option<&Path>) -> Result<String, CreateAdminError> {
    let (source_name, line) = match file {
        Some(path) => (path.display().to_string(), first_line_of_file(path)),
        None => {
            if std::io::stdin().is_terminal() {
                return Err(CreateAdminError::PasswordFromTerminal);
            }
            let mut line = String::new();
            let read = std::io::stdin().lock().read_line(&mut line).map(|_| line);
            ("standard input".to_owned(), read)
        }
    };
    let line = line.map_err(|error| CreateAdminError::ReadPassword { source_name, error })?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(CreateAdminError::EmptyPassword);
    }
    Ok(password)
}

fn first_line_of_file(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// Creates the admin account `username` in the data directory of `config`
/// and returns its user ID. The password is hashed as registration hashes
/// it, and the write is on disk before this returns.
///
/// # Errors
///
/// Returns an error for an invalid or taken username, a data directory in
/// use by a running server, or a storage failure.
pub fn create_first_admin(
    config: &Config,
    username: &str,
    password: String,
) -> Result<String, CreateAdminError> {
    let user_id = account::validate_localpart(username, &config.server_name).map_err(|error| {
        CreateAdminError::InvalidUsername {
            username: username.to_owned(),
            reason: error.message,
        }
    })?;
    std::fs::create_dir_all(&config.data_dir).map_err(|error| CreateAdminError::DataDir {
        path: config.data_dir.clone(),
        error,
    })?;
    let store = Store::open(&config.data_dir)?;
    if store.get(Map::Users, user_id.as_bytes())?.is_some() {
        return Err(CreateAdminError::UserExists(user_id));
    }

    let passwords = PasswordWorker::start(0).map_err(CreateAdminError::Thread)?;
    let (committer, commit_thread) =
        Committer::start(store.clone()).map_err(CreateAdminError::Thread)?;
    let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .build()
        .map_err(CreateAdminError::Thread)?;
    let written = runtime.block_on(async {
        let hash = passwords
            .hash(password)
            .await
            .ok_or(CreateAdminError::Hashing)?;
        let mut batch = WriteBatch::default();
        batch.put_json(
            Map::Users,
            user_id.as_bytes().to_vec(),
            &account::new_record(hash, true),
        );
        committer.commit(batch).await?;
        Ok::<(), CreateAdminError>(())
    });
    committer.stop();
    let _ = commit_thread.join();
    written?;
    store.persist()?;
    tracing::info!(user_id, "created server admin account");
    Ok(user_id)
}
