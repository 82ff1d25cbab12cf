//! Proto3 JSON for Tongban messages, through the descriptor set (prost-reflect), so the mapping
//! is exactly the canonical one (lowerCamelCase names, enums by name, well-known types).

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};

/// Why a JSON document could not become a message.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("unknown message type {0}")]
    UnknownType(String),
    #[error("invalid JSON for {message}: {source}")]
    Parse {
        message: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot convert to {0}: {1}")]
    Transcode(String, String),
}

/// The pool holding every Tongban message descriptor.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        #[allow(clippy::expect_used)]
        DescriptorPool::decode(crate::DESCRIPTOR_SET)
            .expect("descriptor set built by build.rs decodes")
    })
}

/// Parses proto3 JSON into the message `T` whose full name is `full_name`.
pub fn from_json<T: prost::Message + Default>(full_name: &str, text: &str) -> Result<T, JsonError> {
    let desc = pool()
        .get_message_by_name(full_name)
        .ok_or_else(|| JsonError::UnknownType(full_name.to_string()))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let dynamic =
        DynamicMessage::deserialize_with_options(desc, &mut de, &DeserializeOptions::new())
            .map_err(|source| JsonError::Parse {
                message: full_name.to_string(),
                source,
            })?;
    de.end().map_err(|source| JsonError::Parse {
        message: full_name.to_string(),
        source,
    })?;
    dynamic
        .transcode_to::<T>()
        .map_err(|e| JsonError::Transcode(full_name.to_string(), e.to_string()))
}

/// Renders `msg` (of type `full_name`) as proto3 JSON, keeping fields at their default values
/// so scripts see every field.
pub fn to_json_value<T: prost::Message>(
    full_name: &str,
    msg: &T,
) -> Result<serde_json::Value, JsonError> {
    let desc = pool()
        .get_message_by_name(full_name)
        .ok_or_else(|| JsonError::UnknownType(full_name.to_string()))?;
    let mut dynamic = DynamicMessage::new(desc);
    dynamic
        .transcode_from(msg)
        .map_err(|e| JsonError::Transcode(full_name.to_string(), e.to_string()))?;
    let opts = SerializeOptions::new().skip_default_fields(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &opts)
        .map_err(|source| JsonError::Parse {
            message: full_name.to_string(),
            source,
        })
}
