//! Length-prefixed JSON: `u32` big-endian byte count, then that many bytes of UTF-8 JSON.

use garde::Validate;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{DecodeError, HypercoreError};

/// Size of the length prefix.
pub const PREFIX_BYTES: usize = 4;

/// Largest JSON body a frame can announce (the prefix is a `u32`).
pub const MAX_FRAME_BYTES: usize = u32::MAX as usize;

/// Validates `value`, then encodes it as a length-prefixed JSON frame.
///
/// A value that fails validation is never encoded: the error is `DESERIALIZATION_FAILED`
/// with the field path, the same error the reading side would give.
pub fn serialize<T>(value: &T) -> Result<Vec<u8>, HypercoreError>
where
    T: Serialize + Validate<Context = ()>,
{
    value.validate().map_err(schema_error)?;
    let mut out = vec![0u8; PREFIX_BYTES];
    serde_json::to_writer(&mut out, value).map_err(|e| {
        HypercoreError::decode(DecodeError::Schema {
            path: ".".into(),
            message: e.to_string(),
        })
    })?;
    let body = out.len() - PREFIX_BYTES;
    let declared = u32::try_from(body).map_err(|_| {
        HypercoreError::decode(DecodeError::TooLarge {
            size: body,
            limit: MAX_FRAME_BYTES,
        })
    })?;
    out[..PREFIX_BYTES].copy_from_slice(&declared.to_be_bytes());
    Ok(out)
}

/// Decodes one frame that must fill `bytes` exactly, then validates the value.
///
/// Every failure is `DESERIALIZATION_FAILED` with a [`DecodeError`] saying why: missing
/// prefix, truncated body, trailing bytes, bad JSON (with line and column), or a schema
/// violation with the field path. Never panics, whatever the input.
pub fn deserialize<T>(bytes: &[u8]) -> Result<T, HypercoreError>
where
    T: DeserializeOwned + Validate<Context = ()>,
{
    let Some((prefix, body)) = bytes.split_first_chunk::<PREFIX_BYTES>() else {
        return Err(HypercoreError::decode(DecodeError::MissingPrefix {
            available: bytes.len(),
        }));
    };
    let declared = u64::from(u32::from_be_bytes(*prefix));
    let available = body.len() as u64;
    if declared > available {
        return Err(HypercoreError::decode(DecodeError::Truncated {
            declared,
            available: body.len(),
        }));
    }
    if declared < available {
        return Err(HypercoreError::decode(DecodeError::TrailingBytes {
            declared,
            trailing: (available - declared) as usize,
        }));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        HypercoreError::decode(if inner.is_data() {
            DecodeError::Schema {
                path,
                message: inner.to_string(),
            }
        } else {
            DecodeError::BadJson {
                line: inner.line(),
                column: inner.column(),
                message: inner.to_string(),
            }
        })
    })?;
    // The body must hold exactly one JSON value (whitespace aside).
    de.end().map_err(|e| {
        HypercoreError::decode(DecodeError::BadJson {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    })?;
    value.validate().map_err(schema_error)?;
    Ok(value)
}

fn schema_error(report: garde::Report) -> HypercoreError {
    let (path, message) = match report.iter().next() {
        Some((path, error)) => {
            let p = path.to_string();
            (
                if p.is_empty() { ".".to_owned() } else { p },
                error.message().to_owned(),
            )
        }
        None => (".".to_owned(), "validation failed".to_owned()),
    };
    HypercoreError::decode(DecodeError::Schema { path, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorCode, MemoryNodeEntry};

    fn node() -> MemoryNodeEntry {
        MemoryNodeEntry {
            id: "id".into(),
            agent_source: "a".into(),
            category: "c".into(),
            content: "x".into(),
            tags: vec![],
            importance: 0.25,
            timestamp: 7,
        }
    }

    fn reason(err: HypercoreError) -> DecodeError {
        assert_eq!(err.code(), ErrorCode::DeserializationFailed);
        match err {
            HypercoreError::DeserializationFailed { reason, .. } => reason,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn frame_is_big_endian_length_plus_camel_case_json() {
        let bytes = serialize(&node()).unwrap();
        let body = &bytes[4..];
        assert_eq!(&bytes[..4], &(body.len() as u32).to_be_bytes());
        let text = std::str::from_utf8(body).unwrap();
        assert!(text.contains("\"agentSource\":\"a\""), "{text}");
    }

    #[test]
    fn short_truncated_and_trailing_inputs_are_typed() {
        let bytes = serialize(&node()).unwrap();
        assert_eq!(
            reason(deserialize::<MemoryNodeEntry>(&bytes[..3]).unwrap_err()),
            DecodeError::MissingPrefix { available: 3 }
        );
        assert!(matches!(
            reason(deserialize::<MemoryNodeEntry>(&bytes[..bytes.len() - 1]).unwrap_err()),
            DecodeError::Truncated { .. }
        ));
        let mut long = bytes.clone();
        long.push(b' ');
        assert!(matches!(
            reason(deserialize::<MemoryNodeEntry>(&long).unwrap_err()),
            DecodeError::TrailingBytes { trailing: 1, .. }
        ));
    }

    #[test]
    fn bad_json_and_schema_violations_name_the_place() {
        let frame = |s: &str| {
            let mut v = (s.len() as u32).to_be_bytes().to_vec();
            v.extend_from_slice(s.as_bytes());
            v
        };
        assert!(matches!(
            reason(deserialize::<MemoryNodeEntry>(&frame("{\"id\":")).unwrap_err()),
            DecodeError::BadJson { .. }
        ));
        let bad_tag = r#"{"id":"i","agentSource":"a","category":"c","content":"x","tags":["ok",3],"importance":0.5,"timestamp":1}"#;
        match reason(deserialize::<MemoryNodeEntry>(&frame(bad_tag)).unwrap_err()) {
            DecodeError::Schema { path, .. } => assert_eq!(path, "tags[1]"),
            other => panic!("{other:?}"),
        }
        let too_important = r#"{"id":"i","agentSource":"a","category":"c","content":"x","tags":[],"importance":1.5,"timestamp":1}"#;
        match reason(deserialize::<MemoryNodeEntry>(&frame(too_important)).unwrap_err()) {
            DecodeError::Schema { path, .. } => assert_eq!(path, "importance"),
            other => panic!("{other:?}"),
        }
        let missing = r#"{"id":"i"}"#;
        assert!(matches!(
            reason(deserialize::<MemoryNodeEntry>(&frame(missing)).unwrap_err()),
            DecodeError::Schema { .. }
        ));
    }

    #[test]
    fn invalid_values_are_never_encoded() {
        let mut n = node();
        n.importance = f64::NAN;
        assert!(matches!(
            reason(serialize(&n).unwrap_err()),
            DecodeError::Schema { ref path, .. } if path == "importance"
        ));
        n.importance = 0.5;
        n.timestamp = crate::MAX_SAFE_INTEGER + 1;
        assert!(serialize(&n).is_err());
    }
}
