//! The `--state` file: the users and rooms that a scenario's setup created,
//! so that later runs against the same server can reuse them.
//!
//! The file contains access tokens, so it is created readable by its owner
//! only.

use std::{fs, io, path::Path};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::matrix::Session;

/// Version of the file layout, raised on incompatible changes.
const FORMAT: u32 = 1;

/// Users and rooms created by the setup of one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format: u32,
    /// Homeserver URL that the setup ran against.
    pub url: String,
    pub scenario: String,
    /// The options that shaped the setup, such as the number of users.
    pub setup: Value,
    pub users: Vec<Session>,
    pub rooms: Vec<String>,
}

impl State {
    pub fn new(
        url: &str,
        scenario: &str,
        setup: Value,
        users: Vec<Session>,
        rooms: Vec<String>,
    ) -> Self {
        Self {
            format: FORMAT,
            url: url.to_owned(),
            scenario: scenario.to_owned(),
            setup,
            users,
            rooms,
        }
    }

    /// Checks that the state was made by the same scenario with the same
    /// setup options against the same URL, so that it fits this run.
    pub fn check_fits(&self, url: &str, scenario: &str, setup: &Value) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "state file format {} is not supported (expected {FORMAT})",
                self.format
            ));
        }
        if self.url != url {
            return Err(format!(
                "state file was created against {}, not {url}",
                self.url
            ));
        }
        if self.scenario != scenario {
            return Err(format!(
                "state file was created by the {} scenario, not {scenario}",
                self.scenario
            ));
        }
        if &self.setup != setup {
            return Err(format!(
                "state file was created with setup options {}, but this run has {setup}",
                self.setup
            ));
        }
        if self.users.is_empty() || self.rooms.is_empty() {
            return Err("state file has no users or no rooms".to_owned());
        }
        Ok(())
    }
}

/// Reads the state file at `path`. Returns `None` when it does not exist.
pub fn load(path: &Path) -> Result<Option<State>, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("failed to read {}: {error}", path.display())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|error| format!("invalid state file {}: {error}", path.display()))
}

/// Writes `state` to `path` through a temporary file and a rename, so that
/// an interrupted write leaves no partial file.
pub fn save(path: &Path, state: &State) -> Result<(), String> {
    let mut json = serde_json::to_string_pretty(state)
        .map_err(|error| format!("failed to encode the state: {error}"))?;
    json.push('\n');
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = Path::new(&temporary);
    write_private(temporary, json.as_bytes())
        .map_err(|error| format!("failed to write {}: {error}", temporary.display()))?;
    fs::rename(temporary, path).map_err(|error| {
        format!(
            "failed to rename {} to {}: {error}",
            temporary.display(),
            path.display()
        )
    })
}

/// Writes `bytes` to a new or truncated file that only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;

    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{State, load, save};
    use crate::matrix::Session;

    fn sample() -> State {
        State::new(
            "http://127.0.0.1:8008",
            "send",
            json!({ "users": 2, "rooms": 1 }),
            vec![Session {
                user_id: "@a:localhost".to_owned(),
                access_token: "token".to_owned(),
                device_id: "DEV".to_owned(),
            }],
            vec!["!r:localhost".to_owned()],
        )
    }

    #[test]
    fn state_round_trips_through_file() {
        let dir = std::env::temp_dir().join(format!("loadtest-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert_eq!(load(&path).unwrap(), None);
        save(&path, &sample()).unwrap();
        assert_eq!(load(&path).unwrap(), Some(sample()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not json").unwrap();
        assert!(load(&path).unwrap_err().contains("invalid state file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn state_fits_same_run_only() {
        let state = sample();
        let setup = json!({ "users": 2, "rooms": 1 });
        let url = "http://127.0.0.1:8008";
        assert_eq!(state.check_fits(url, "send", &setup), Ok(()));

        let other_url = state.check_fits("http://127.0.0.1:9", "send", &setup);
        assert!(other_url.unwrap_err().contains("created against"));
        let other_scenario = state.check_fits(url, "fanout", &setup);
        assert!(other_scenario.unwrap_err().contains("send scenario"));
        let other_setup = state.check_fits(url, "send", &json!({ "users": 3, "rooms": 1 }));
        assert!(other_setup.unwrap_err().contains("setup options"));
        let empty = State {
            rooms: Vec::new(),
            ..sample()
        };
        assert!(empty.check_fits(url, "send", &setup).is_err());
    }
}
