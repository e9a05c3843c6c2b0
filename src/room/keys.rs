//! The server's ed25519 signing key, kept in `<data_dir>/signing.key`, and
//! the public halves of the keys it replaced, kept in
//! `<data_dir>/old_signing_keys`.
//!
//! `signing.key` contains the key ID version and the PKCS#8 document in
//! base64 on one line, `ed25519 <version> <base64>`, the layout Synapse also
//! uses. Each line of `old_signing_keys` is `ed25519:<version> <public key in
//! unpadded base64> <expiry in milliseconds since the epoch>`.

use std::{
    fs,
    io::{self, Write as _},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

use base64::Engine as _;
use ruma::signatures::Ed25519KeyPair;

const KEY_FILE: &str = "signing.key";
const OLD_KEYS_FILE: &str = "old_signing_keys";
/// File mode of the key files: read and write for their owner only.
const OWNER_ONLY: u32 = 0o600;

/// The signing key, its public half, and the keys it replaced.
pub struct SigningKey {
    pub pair: Ed25519KeyPair,
    pub public_base64: String,
    pub old_keys: Vec<OldKey>,
}

/// A replaced key, listed in `old_verify_keys` so that other servers can
/// still check what it signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldKey {
    /// `ed25519:<version>`.
    pub key_id: String,
    pub public_base64: String,
    pub expired_ts: u64,
}

impl SigningKey {
    /// Loads the key from `dir`, creating one on first start.
    ///
    /// # Errors
    ///
    /// Returns an error if a key file cannot be read or written or is invalid.
    pub fn load_or_create(dir: &Path) -> io::Result<Self> {
        let path = dir.join(KEY_FILE);
        if !path.exists() {
            tracing::info!(path = %path.display(), "creating the server signing key");
            write_new_key(dir)?;
        }
        restrict_to_owner(&path)?;
        let pair = read_pair(&path)?;
        Ok(Self {
            public_base64: public_base64(&pair),
            pair,
            old_keys: read_old_keys(dir)?,
        })
    }

    /// Returns the key ID, `ed25519:<version>`.
    #[must_use]
    pub fn key_id(&self) -> String {
        format!("ed25519:{}", self.pair.version())
    }
}

/// Replaces the signing key in `dir` with a new one and lists the old
/// public key in `old_signing_keys`, expired at `now_ms`. A running server
/// keeps signing with the key it loaded until it restarts.
///
/// # Errors
///
/// Returns an error if the key files cannot be read or written.
pub fn rotate(dir: &Path, now_ms: u64) -> io::Result<(String, String)> {
    let current = SigningKey::load_or_create(dir)?;
    let old = OldKey {
        key_id: current.key_id(),
        public_base64: current.public_base64.clone(),
        expired_ts: now_ms,
    };
    let mut old_keys = current.old_keys;
    old_keys.retain(|key| key.key_id != old.key_id);
    old_keys.push(old.clone());
    let lines: String = old_keys
        .iter()
        .map(|key| format!("{} {} {}\n", key.key_id, key.public_base64, key.expired_ts))
        .collect();
    // The old key is listed before the new key replaces it, so a crash in
    // between leaves the current key in both files and loses nothing.
    write_atomically(dir, OLD_KEYS_FILE, &lines)?;
    write_new_key(dir)?;
    let new = SigningKey::load_or_create(dir)?;
    Ok((old.key_id, new.key_id()))
}

fn write_new_key(dir: &Path) -> io::Result<()> {
    let document = Ed25519KeyPair::generate();
    let version = crate::auth::token::random_id(6).to_lowercase();
    let encoded = base64::engine::general_purpose::STANDARD.encode(document.as_slice());
    write_atomically(dir, KEY_FILE, &format!("ed25519 a_{version} {encoded}\n"))
}

/// Writes `text` to `dir/name` through a temporary file readable only by
/// its owner, because `signing.key` contains the private key.
fn write_atomically(dir: &Path, name: &str, text: &str) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(OWNER_ONLY)
        .open(&tmp)?;
    // A temporary file left by a crash keeps its old mode when reopened.
    file.set_permissions(fs::Permissions::from_mode(OWNER_ONLY))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    fs::File::open(dir)?.sync_all()
}

/// Removes every permission of other users from the key file, which
/// earlier versions created readable by everyone.
fn restrict_to_owner(path: &Path) -> io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the signing key was readable by other users; restricting it to its owner");
        fs::set_permissions(path, fs::Permissions::from_mode(OWNER_ONLY))?;
    }
    Ok(())
}

fn read_pair(path: &Path) -> io::Result<Ed25519KeyPair> {
    let text = fs::read_to_string(path)?;
    let mut parts = text.split_whitespace();
    let (Some("ed25519"), Some(version), Some(encoded)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(io::Error::other(format!(
            "invalid signing key file {}",
            path.display()
        )));
    };
    let invalid = |what: &str| {
        io::Error::other(format!(
            "invalid {what} in signing key file {}",
            path.display()
        ))
    };
    if !valid_version(version) {
        return Err(invalid("key version (expected letters, digits and _)"));
    }
    let document = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| invalid("base64 key"))?;
    Ed25519KeyPair::from_der(&document, version.to_owned()).map_err(|_| invalid("PKCS#8 key"))
}

/// Returns whether `version` is a valid key version: letters, digits and
/// `_`, as the key ID grammar allows.
fn valid_version(version: &str) -> bool {
    !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn public_base64(pair: &Ed25519KeyPair) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(pair.public_key())
}

fn read_old_keys(dir: &Path) -> io::Result<Vec<OldKey>> {
    let path = dir.join(OLD_KEYS_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(io::Error::other(format!(
                "failed to read {}: {error}",
                path.display()
            )));
        }
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let invalid = || {
                io::Error::other(format!(
                    "invalid line in {}: {line:?}; expected `ed25519:<version> <public key> <expiry ms>`",
                    path.display()
                ))
            };
            let mut parts = line.split_whitespace();
            let (Some(key_id), Some(public), Some(expired)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(invalid());
            };
            let version_ok = key_id.strip_prefix("ed25519:").is_some_and(valid_version);
            let key_ok = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(public)
                .is_ok_and(|bytes| bytes.len() == 32);
            if !version_ok || !key_ok {
                return Err(invalid());
            }
            Ok(OldKey {
                key_id: key_id.to_owned(),
                public_base64: public.to_owned(),
                expired_ts: expired.parse().map_err(|_| invalid())?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temporary directory, removed on drop.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new() -> Self {
            let name = format!("eltrix-keys-{}", crate::auth::token::random_id(8));
            let path = std::env::temp_dir().join(name);
            fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn rotation_moves_key_to_old_keys() {
        let dir = TempDir::new();
        let first = SigningKey::load_or_create(dir.path()).unwrap();
        let (old_id, new_id) = rotate(dir.path(), 1_000).unwrap();
        let second = SigningKey::load_or_create(dir.path()).unwrap();

        assert_eq!(old_id, first.key_id());
        assert_eq!(new_id, second.key_id());
        assert_ne!(second.public_base64, first.public_base64);
        assert_eq!(
            second.old_keys,
            vec![OldKey {
                key_id: first.key_id(),
                public_base64: first.public_base64,
                expired_ts: 1_000,
            }]
        );
    }

    #[test]
    fn key_survives_reload() {
        let dir = TempDir::new();
        let first = SigningKey::load_or_create(dir.path()).unwrap();
        let again = SigningKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.key_id(), again.key_id());
        assert_eq!(first.public_base64, again.public_base64);
        assert!(again.old_keys.is_empty());
    }

    #[test]
    fn invalid_key_files_are_errors() {
        let dir = TempDir::new();
        let key = SigningKey::load_or_create(dir.path()).unwrap();
        let line = format!("ed25519:a_x!! {} 1\n", key.public_base64);
        fs::write(dir.path().join(OLD_KEYS_FILE), line).unwrap();
        assert!(read_old_keys(dir.path()).is_err());
        fs::write(
            dir.path().join(OLD_KEYS_FILE),
            "ed25519:a_x !!!<script> 1\n",
        )
        .unwrap();
        assert!(read_old_keys(dir.path()).is_err());
        fs::write(dir.path().join(KEY_FILE), "ed25519 bad-version! AAAA\n").unwrap();
        let error = read_pair(&dir.path().join(KEY_FILE)).unwrap_err();
        assert!(error.to_string().contains("signing.key"), "{error}");
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn key_file_is_owner_only() {
        let dir = TempDir::new();
        SigningKey::load_or_create(dir.path()).unwrap();
        assert_eq!(mode_of(&dir.path().join(KEY_FILE)), 0o600);
        rotate(dir.path(), 1_000).unwrap();
        assert_eq!(mode_of(&dir.path().join(KEY_FILE)), 0o600);
    }

    #[test]
    fn readable_key_file_is_restricted_on_load() {
        let dir = TempDir::new();
        SigningKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        SigningKey::load_or_create(dir.path()).unwrap();
        assert_eq!(mode_of(&path), 0o600);
    }

    #[test]
    fn invalid_old_key_line_is_an_error() {
        let dir = TempDir::new();
        fs::write(dir.path().join(OLD_KEYS_FILE), "not a key line\n").unwrap();
        assert!(read_old_keys(dir.path()).is_err());
    }
}
