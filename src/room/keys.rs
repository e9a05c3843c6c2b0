//! The server's ed25519 signing key, kept in `<data_dir>/signing.key`.
//!
//! The file contains the key ID version and the PKCS#8 document in base64, on
//! one line: `ed25519 <version> <base64>`, the layout Synapse also uses.

use std::{fs, io, path::Path};

use base64::Engine as _;
use ruma::signatures::Ed25519KeyPair;

/// The signing key and its public half.
pub struct SigningKey {
    pub pair: Ed25519KeyPair,
    pub public_base64: String,
}

impl SigningKey {
    /// Loads the key from `dir`, creating one on first start.
    ///
    /// # Errors
    ///
    /// Returns an error if the file cannot be read or written or is invalid.
    pub fn load_or_create(dir: &Path) -> io::Result<Self> {
        let path = dir.join("signing.key");
        if !path.exists() {
            tracing::info!(path = %path.display(), "creating the server signing key");
            let document = Ed25519KeyPair::generate();
            let version = crate::auth::token::random_id(6).to_lowercase();
            let encoded = base64::engine::general_purpose::STANDARD.encode(document.as_slice());
            let tmp = dir.join("signing.key.tmp");
            fs::write(&tmp, format!("ed25519 a_{version} {encoded}\n"))?;
            fs::File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, &path)?;
        }
        let text = fs::read_to_string(&path)?;
        let mut parts = text.split_whitespace();
        let (Some("ed25519"), Some(version), Some(encoded)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(io::Error::other(format!(
                "invalid signing key file {}",
                path.display()
            )));
        };
        let document = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(io::Error::other)?;
        let pair =
            Ed25519KeyPair::from_der(&document, version.to_owned()).map_err(io::Error::other)?;
        let public_base64 =
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(pair.public_key());
        Ok(Self {
            pair,
            public_base64,
        })
    }
}
