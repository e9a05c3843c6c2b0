//! `X-Matrix` request authorization: the origin signs the method, URI,
//! origin, destination and JSON body of each request with its server key.

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue,
    serde::Base64,
    signatures::{PublicKeyMap, PublicKeySet},
};

use crate::room::keys::SigningKey;

/// The parameters of an `Authorization: X-Matrix ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XMatrix {
    pub origin: String,
    /// Required since spec v1.3, but older servers omit it.
    pub destination: Option<String>,
    pub key: String,
    pub sig: String,
}

/// Parses an `Authorization` header value, or returns `None` when it is not
/// a complete `X-Matrix` one.
#[must_use]
pub fn parse(header: &str) -> Option<XMatrix> {
    let (scheme, params) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("x-matrix") {
        return None;
    }
    let (mut origin, mut destination, mut key, mut sig) = (None, None, None, None);
    for param in split_params(params) {
        let (name, value) = param.split_once('=')?;
        let value = unquote(value.trim());
        match name.trim().to_ascii_lowercase().as_str() {
            "origin" => origin = Some(value),
            "destination" => destination = Some(value),
            "key" => key = Some(value),
            "sig" => sig = Some(value),
            _ => {}
        }
    }
    Some(XMatrix {
        origin: origin?,
        destination,
        key: key?,
        sig: sig?,
    })
}

/// Splits `a=1,b="x,y"` at the commas outside quotes.
fn split_params(params: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (index, byte) in params.bytes().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                parts.push(&params[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&params[start..]);
    parts
        .into_iter()
        .filter(|part| !part.trim().is_empty())
        .collect()
}

/// Removes the quotes and backslash escapes of a quoted string.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The JSON object that the signature covers.
fn signed_object(
    method: &str,
    uri: &str,
    origin: &str,
    destination: &str,
    content: Option<&CanonicalJsonValue>,
) -> CanonicalJsonObject {
    let text = |value: &str| CanonicalJsonValue::String(value.to_owned());
    let mut object = CanonicalJsonObject::from([
        ("method".to_owned(), text(method)),
        ("uri".to_owned(), text(uri)),
        ("origin".to_owned(), text(origin)),
        ("destination".to_owned(), text(destination)),
    ]);
    if let Some(content) = content {
        object.insert("content".to_owned(), content.clone());
    }
    object
}

/// Returns the `Authorization` header value for a request from `origin` to
/// `destination`. `uri` is the path with its query string, as sent.
///
/// # Errors
///
/// Returns the signing error.
pub fn authorization(
    key: &SigningKey,
    origin: &str,
    destination: &str,
    method: &str,
    uri: &str,
    content: Option<&CanonicalJsonValue>,
) -> Result<String, String> {
    let mut object = signed_object(method, uri, origin, destination, content);
    ruma::signatures::sign_json(origin, &key.pair, &mut object).map_err(|e| e.to_string())?;
    let key_id = key.key_id();
    let signature = object
        .get("signatures")
        .and_then(|value| match value {
            CanonicalJsonValue::Object(servers) => servers.get(origin),
            _ => None,
        })
        .and_then(|value| match value {
            CanonicalJsonValue::Object(keys) => keys.get(&key_id),
            _ => None,
        })
        .and_then(|value| match value {
            CanonicalJsonValue::String(signature) => Some(signature.clone()),
            _ => None,
        })
        .ok_or_else(|| "the signature is missing after signing".to_owned())?;
    Ok(format!(
        "X-Matrix origin=\"{origin}\",destination=\"{destination}\",key=\"{key_id}\",sig=\"{signature}\""
    ))
}

/// Checks the signature of a request received by `destination`, with the
/// origin's public keys in `origin_keys`.
///
/// # Errors
///
/// Returns why the request is not authorized.
pub fn verify(
    header: &XMatrix,
    destination: &str,
    method: &str,
    uri: &str,
    content: Option<&CanonicalJsonValue>,
    origin_keys: &PublicKeySet,
) -> Result<(), String> {
    if let Some(named) = &header.destination
        && named != destination
    {
        return Err(format!("the request is for {named}, not this server"));
    }
    let Some(public_key) = origin_keys.get(&header.key) else {
        return Err(format!("{} has no key {}", header.origin, header.key));
    };
    let mut object = signed_object(method, uri, &header.origin, destination, content);
    let signature = CanonicalJsonObject::from([(
        header.key.clone(),
        CanonicalJsonValue::String(header.sig.clone()),
    )]);
    let signatures =
        CanonicalJsonObject::from([(header.origin.clone(), CanonicalJsonValue::Object(signature))]);
    object.insert(
        "signatures".to_owned(),
        CanonicalJsonValue::Object(signatures),
    );
    let keys: PublicKeyMap = [(
        header.origin.clone(),
        PublicKeySet::from([(header.key.clone(), public_key.clone())]),
    )]
    .into();
    ruma::signatures::verify_json(&keys, &object).map_err(|error| error.to_string())
}

/// Decodes a public key from unpadded base64.
#[must_use]
pub fn public_key(base64: &str) -> Option<Base64> {
    Base64::parse(base64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        use base64::Engine as _;
        let document = ruma::signatures::Ed25519KeyPair::generate();
        let pair = ruma::signatures::Ed25519KeyPair::from_der(&document, "k1".to_owned()).unwrap();
        let public_base64 =
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(pair.public_key());
        SigningKey {
            pair,
            public_base64,
            old_keys: Vec::new(),
        }
    }

    fn keys_of(key: &SigningKey) -> PublicKeySet {
        PublicKeySet::from([(key.key_id(), public_key(&key.public_base64).unwrap())])
    }

    #[test]
    fn header_parses_quoted_and_bare_values() {
        let header = parse(
            r#"X-Matrix origin=a.example,destination="b.example",key="ed25519:k1",sig="c2ln""#,
        )
        .unwrap();
        assert_eq!(header.origin, "a.example");
        assert_eq!(header.destination.as_deref(), Some("b.example"));
        assert_eq!(header.key, "ed25519:k1");
        assert_eq!(header.sig, "c2ln");
    }

    #[test]
    fn other_schemes_are_not_x_matrix() {
        assert!(parse("Bearer abc").is_none());
        assert!(parse("X-Matrix origin=a").is_none());
    }

    #[test]
    fn signed_request_verifies() {
        let key = key();
        let content = CanonicalJsonValue::Object(CanonicalJsonObject::from([(
            "a".to_owned(),
            CanonicalJsonValue::String("b".to_owned()),
        )]));
        let value = authorization(
            &key,
            "a.example",
            "b.example",
            "PUT",
            "/x?y=1",
            Some(&content),
        )
        .unwrap();
        let header = parse(&value).unwrap();
        let checked = verify(
            &header,
            "b.example",
            "PUT",
            "/x?y=1",
            Some(&content),
            &keys_of(&key),
        );
        assert_eq!(checked, Ok(()));
    }

    #[test]
    fn changed_request_fails() {
        let key = key();
        let value = authorization(&key, "a.example", "b.example", "GET", "/x", None).unwrap();
        let header = parse(&value).unwrap();
        let keys = keys_of(&key);
        assert!(verify(&header, "b.example", "GET", "/other", None, &keys).is_err());
        assert!(verify(&header, "c.example", "GET", "/x", None, &keys).is_err());
        assert!(verify(&header, "b.example", "POST", "/x", None, &keys).is_err());
    }
}
