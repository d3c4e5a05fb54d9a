//! The IPC error shape: what a failed command rejects with in JavaScript.

use nova_hypercore_serialization::{ErrorPayload, HypercoreError};
use serde::{Serialize, Serializer};

/// A failed command. Crosses IPC as the spec's JSON object
/// `{ code, message, logName?, seq? }` ([`ErrorPayload`]); `code` is one of the nine
/// [`nova_hypercore_serialization::ErrorCode`]s.
///
/// ```
/// use nova_hypercore_serialization::HypercoreError;
/// use tauri_plugin_nova_hypercore::Error;
///
/// let err = Error::from(HypercoreError::OutOfRange { log: "a".into(), seq: 7, length: 2 });
/// let json = serde_json::to_value(&err)?;
/// assert_eq!(json["code"], "OUT_OF_RANGE");
/// assert_eq!(json["logName"], "a");
/// assert_eq!(json["seq"], 7);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] pub HypercoreError);

impl Error {
    /// The JSON shape sent to JavaScript.
    pub fn payload(&self) -> ErrorPayload {
        self.0.to_payload()
    }
}

impl Serialize for Error {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.payload().serialize(serializer)
    }
}

/// Result of a command.
pub type Result<T, E = Error> = std::result::Result<T, E>;
