//! The one JSON form of passerelle's messages: the proto3 canonical JSON
//! mapping (<https://protobuf.dev/programming-guides/json/>), from the
//! descriptors compiled into this crate. Field names in lowerCamelCase,
//! 64-bit integers (every amount) as strings, enums by name, timestamps as
//! RFC 3339. The CLI's `--json` prints it; a JSON door reads and writes it.
//!
//! Written from the descriptors, never by hand: a field added to a `.proto`
//! appears here with no code.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};

/// Every passerelle message's descriptor.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set compiled into this crate decodes")
    })
}

fn dynamic<M: prost::Message + prost::Name>(m: &M) -> DynamicMessage {
    let desc = pool()
        .get_message_by_name(&M::full_name())
        .unwrap_or_else(|| panic!("{} is in the descriptor set", M::full_name()));
    DynamicMessage::decode(desc, m.encode_to_vec().as_slice())
        .expect("a message decodes under its own descriptor")
}

/// A message as canonical JSON, every field shown (defaults too, so that
/// a script reads `"mutuelleShare": "0"` rather than a missing key).
pub fn to_json<M: prost::Message + prost::Name>(m: &M) -> serde_json::Value {
    let options = SerializeOptions::new().skip_default_fields(false);
    dynamic(m)
        .serialize_with_options(serde_json::value::Serializer, &options)
        .expect("a dynamic message serializes to JSON")
}

/// A message from canonical JSON; an unknown field is refused, named.
pub fn from_json<M: prost::Message + prost::Name + Default>(text: &str) -> Result<M, String> {
    let desc = pool()
        .get_message_by_name(&M::full_name())
        .ok_or_else(|| format!("{} is not in the descriptor set", M::full_name()))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let msg = DynamicMessage::deserialize_with_options(desc, &mut de, &options)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    msg.transcode_to::<M>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::v1 as common;
    use crate::scheme::v1 as scheme;

    #[test]
    fn canonical_mapping_amounts_as_strings_enums_by_name() {
        let r = scheme::ClaimResult {
            claim_id: "C-1".into(),
            state: scheme::ClaimState::Coordinated as i32,
            rejection: Some(common::Reason {
                code: common::ReasonCode::DuplicateInvoice as i32,
                message: "déjà reçue".into(),
            }),
            updated_at_ms: 1_767_225_600_000,
            ..Default::default()
        };
        let v = to_json(&r);
        assert_eq!(v["updatedAtMs"], "1767225600000");
        assert_eq!(v["claimId"], "C-1");
        assert_eq!(v["state"], "CLAIM_STATE_COORDINATED");
        assert_eq!(v["rejection"]["code"], "REASON_CODE_DUPLICATE_INVOICE");
        let back: scheme::ClaimResult = from_json(&v.to_string()).unwrap();
        assert_eq!(back, r);
        let err =
            from_json::<scheme::ClaimResult>(r#"{"claimId":"C-1","amountt":"1"}"#).unwrap_err();
        assert!(err.contains("amountt"), "{err}");
    }
}
