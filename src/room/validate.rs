//! Shape checks on the content of state events whose content the
//! authorization rules parse, so that malformed content is reported as a bad
//! request (`M_BAD_JSON`) rather than as a rejected event (`M_FORBIDDEN`).

use serde_json::Value;

use crate::api::error::MatrixError;

/// Top-level power levels that must be integers.
const LEVEL_FIELDS: [&str; 7] = [
    "ban",
    "events_default",
    "invite",
    "kick",
    "redact",
    "state_default",
    "users_default",
];

/// Maps of power levels.
const LEVEL_MAPS: [&str; 3] = ["events", "users", "notifications"];

/// Checks the content of an event of type `kind`. Before room version 10
/// (`integer_power_levels` false) levels may also be strings of integers.
///
/// # Errors
///
/// `M_BAD_JSON` naming the first malformed field.
pub fn check_content(
    kind: &str,
    content: &Value,
    integer_power_levels: bool,
) -> Result<(), MatrixError> {
    if kind != "m.room.power_levels" {
        return Ok(());
    }
    let is_level = |value: &Value| {
        value.as_i64().is_some()
            || (!integer_power_levels
                && value
                    .as_str()
                    .is_some_and(|text| text.trim().parse::<i64>().is_ok()))
    };
    for field in LEVEL_FIELDS {
        if content.get(field).is_some_and(|value| !is_level(value)) {
            return Err(MatrixError::bad_json(format!(
                "Invalid power levels: {field} must be an integer"
            )));
        }
    }
    for map in LEVEL_MAPS {
        let Some(entries) = content.get(map) else {
            continue;
        };
        let Some(entries) = entries.as_object() else {
            return Err(MatrixError::bad_json(format!(
                "Invalid power levels: {map} must be an object"
            )));
        };
        if let Some((key, _)) = entries.iter().find(|(_, value)| !is_level(value)) {
            return Err(MatrixError::bad_json(format!(
                "Invalid power levels: {map}.{key} must be an integer"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::check_content;

    #[test]
    fn accepts_integer_levels() {
        let content =
            json!({ "ban": 50, "users": { "@a:x": 100 }, "events": { "m.room.name": 50 } });
        assert!(check_content("m.room.power_levels", &content, true).is_ok());
    }

    #[test]
    fn rejects_string_levels_when_integers_are_required() {
        let content = json!({ "users": { "@a:x": "100" } });
        let error = check_content("m.room.power_levels", &content, true).unwrap_err();
        assert_eq!(error.errcode, "M_BAD_JSON");
        assert!(check_content("m.room.power_levels", &content, false).is_ok());
    }

    #[test]
    fn rejects_wrong_shapes() {
        assert!(check_content("m.room.power_levels", &json!({ "users": [] }), true).is_err());
        assert!(check_content("m.room.power_levels", &json!({ "kick": "x" }), false).is_err());
        assert!(check_content("m.room.name", &json!({ "users": [] }), true).is_ok());
    }
}
