//! Fixtures: a federation-format `m.room.message` PDU of room version 12 and
//! a set of room and user IDs.

/// An `m.room.message` PDU in federation format, with HTML formatting,
/// mentions and a reply relation. Its `hashes` and `signatures` have the
/// right shape but are placeholders, not valid for this content, so the
/// signing benchmark removes them first.
pub const MESSAGE_PDU: &str = r#"{
  "auth_events": [
    "$Vq3kXo0XhY8p2lH7t0R1bZcN4wQeJmAsKdF6gUiLyT9",
    "$Pm5nB2cV8xZ1aS4dF7gH0jK3lQ6wE9rT2yU5iO8pAs1",
    "$Lk4jH7gF0dS3aQ6wE9rT2yU5iO8pZ1xC4vB7nM0qWe2"
  ],
  "content": {
    "body": "> <@carol:example.org> Are the shard counts in the tuning guide still current?\n\nYes: the spread tool shows the max/mean skew for any candidate count, so run it on the room list before you change the setting. I measured 1.02 on eight shards.",
    "format": "org.matrix.custom.html",
    "formatted_body": "<mx-reply><blockquote><a href=\"https://matrix.to/#/@carol:example.org\">@carol:example.org</a><br>Are the shard counts in the tuning guide still current?</blockquote></mx-reply>Yes: the <code>spread</code> tool shows the max/mean skew for any candidate count, so run it on the room list <em>before</em> you change the setting. I measured 1.02 on eight shards.",
    "m.mentions": {
      "user_ids": ["@carol:example.org"]
    },
    "m.relates_to": {
      "m.in_reply_to": {
        "event_id": "$Qw8eR1tY4uI7oP0aS3dF6gH9jK2lZ5xC8vB1nM4mTr3"
      }
    },
    "msgtype": "m.text"
  },
  "depth": 4817,
  "hashes": {
    "sha256": "kV0mFz2q8cYtq4n8Jm3lJbq0bYQx7Qm0tB9yTjJ2v1E"
  },
  "origin_server_ts": 1767225600000,
  "prev_events": [
    "$Zx9cV2bN5mA8sD1fG4hJ7kL0qW3eR6tY9uI2oP5aSd4"
  ],
  "room_id": "!Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6kM9nP2r",
  "sender": "@dave:example.org",
  "signatures": {
    "example.org": {
      "ed25519:a_1": "Zq0k3Jv1tB8mX2cN6yP4sR7wF9hL5dG0aQ3eT8uI1oK6jM2nV4bC7xZ5lS9rW0pY3fH8gD1eA6tU2qN4mB0vC8A"
    }
  },
  "type": "m.room.message",
  "unsigned": {
    "age_ts": 1767225600000
  }
}"#;

/// Returns `count` room and user IDs, alternating, in the forms the server
/// hashes to pick a shard.
pub fn sample_ids(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            if i % 2 == 0 {
                format!(
                    "!room{:016x}:example.org",
                    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                )
            } else {
                format!("@user{i}:example.org")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{MESSAGE_PDU, sample_ids};

    #[test]
    fn pdu_is_between_one_and_two_kib() {
        let compact =
            serde_json::to_string(&serde_json::from_str::<serde_json::Value>(MESSAGE_PDU).unwrap())
                .unwrap();
        assert!(
            compact.len() >= 1024,
            "compact PDU is {} bytes",
            compact.len()
        );
        assert!(
            compact.len() <= 2048,
            "compact PDU is {} bytes",
            compact.len()
        );
    }

    #[test]
    fn pdu_is_canonical_json() {
        let object = serde_json::from_str::<ruma::CanonicalJsonObject>(MESSAGE_PDU);
        assert!(object.is_ok(), "{object:?}");
    }

    #[test]
    fn sample_ids_are_distinct() {
        let mut ids = sample_ids(1000);
        assert_eq!(ids.len(), 1000);
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 1000);
    }
}
