//! The one JSON form of passerelle's messages: the proto3 canonical JSON
//! mapping (<https://protobuf.dev/programming-guides/json/>), from the
//! descriptors compiled into this crate. Field names in lowerCamelCase,
//! 64-bit integers (every amount) as strings, enums by name, timestamps as
//! RFC 3339. The CLI's `--json` prints it; a JSON door reads and writes it.
//!
//! Written from the descriptors, never by hand: a field added to a `.proto`
//! appears here with no code.

use std::sync::OnceLock;

use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, Kind, SerializeOptions, Value,
};
pub use prost_reflect::{MessageDescriptor, MethodDescriptor};

/// Every passerelle message's descriptor, and google.rpc's error details
/// (tonic-types' descriptor set) so that an error's details can be read as
/// JSON.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut pool = DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set compiled into this crate decodes");
        pool.decode_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .expect("google.rpc's descriptor set decodes");
        pool
    })
}

/// The services the broker serves, on both doors (gRPC and JSON), in the
/// order the documentation lists them. MutuellePartner is not one: the
/// mutuelles serve it.
pub const BROKER_SERVICES: [&str; 5] = [
    "passerelle.scheme.v1.SchemeService",
    "passerelle.roster.v1.RosterService",
    "passerelle.settlement.v1.SettlementService",
    "passerelle.product.v1.ProductService",
    "passerelle.admin.v1.AdminService",
];

/// The method an HTTP path names (`/passerelle.scheme.v1.SchemeService/
/// CheckEligibility`), among the broker's services.
pub fn broker_method(path: &str) -> Option<MethodDescriptor> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    if !BROKER_SERVICES.contains(&service) {
        return None;
    }
    pool()
        .get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method)
}

/// A method that takes one message and answers one (the JSON door serves
/// only those).
pub fn is_unary(m: &MethodDescriptor) -> bool {
    !m.is_client_streaming() && !m.is_server_streaming()
}

/// The unary methods of the broker's services, in [`BROKER_SERVICES`]
/// order, then the `.proto` order.
pub fn unary_methods() -> Vec<MethodDescriptor> {
    BROKER_SERVICES
        .iter()
        .filter_map(|s| pool().get_service_by_name(s))
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .filter(is_unary)
        .collect()
}

/// What is wrong in a JSON body: the field (its path with proto field
/// names, `lines[0].act_code`, as the service's own violations name it;
/// `body` when the JSON itself is broken) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonViolation {
    pub field: String,
    pub description: String,
}

/// A JSON body (canonical mapping; proto field names are accepted too) as
/// the protobuf encoding of `desc`. An unknown field is refused, named.
pub fn json_to_proto(desc: &MessageDescriptor, body: &[u8]) -> Result<Vec<u8>, JsonViolation> {
    // A byte order mark is not JSON, but .NET and Windows tools write one;
    // RFC 8259 lets a reader ignore it.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if let Some(v) = given_twice(desc, body) {
        return Err(v);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut track = serde_path_to_error::Track::new();
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let decoded = DynamicMessage::deserialize_with_options(
        desc.clone(),
        serde_path_to_error::Deserializer::new(&mut de, &mut track),
        &options,
    );
    let msg = decoded.map_err(|e| {
        let error = e.to_string();
        let (field, last) = proto_path(desc, &track.path(), &error);
        let kind = last.as_ref().map(|f| f.kind());
        let mut description = in_plain_words(&error, kind.as_ref());
        if let Some(Kind::Enum(e)) = kind {
            let names: Vec<String> = e.values().map(|v| v.name().to_string()).collect();
            description = format!("{description}; one of {}", names.join(", "));
        }
        JsonViolation { field, description }
    })?;
    de.end().map_err(|e| JsonViolation {
        field: "body".into(),
        description: e.to_string(),
    })?;
    Ok(msg.encode_to_vec())
}

/// A decoding error of serde or prost-reflect in words an integrator of
/// any language reads, where it names Rust's types: a number that is no
/// whole number in range, a string of something else than digits, an
/// object where a list is expected and the other way round.
fn in_plain_words(error: &str, kind: Option<&Kind>) -> String {
    // 64-bit fields are the amounts (minor units); 32-bit ones counts.
    let amount = matches!(kind, Some(Kind::Int64 | Kind::Sint64 | Kind::Sfixed64));
    let whole = |range: &str| {
        let unit = if amount {
            " (an amount is in the currency's minor unit; XOF has none)"
        } else {
            ""
        };
        format!(
            "not a whole number{range}: a JSON number or a string of digits, without decimals, spaces or separators{unit}"
        )
    };
    let range = match kind {
        Some(Kind::Uint32 | Kind::Fixed32) => " from 0 to 4294967295",
        Some(Kind::Int32 | Kind::Sint32 | Kind::Sfixed32) => " from -2147483648 to 2147483647",
        Some(Kind::Uint64 | Kind::Fixed64) => " from 0 to 18446744073709551615",
        _ => "",
    };
    let number = matches!(
        kind,
        Some(
            Kind::Int32
                | Kind::Sint32
                | Kind::Sfixed32
                | Kind::Uint32
                | Kind::Fixed32
                | Kind::Int64
                | Kind::Sint64
                | Kind::Sfixed64
                | Kind::Uint64
                | Kind::Fixed64
        )
    );
    // serde_json reads every number exactly (arbitrary_precision) and hands
    // one that is no 64-bit integer (5000.5, 1e3, too large) over as a map.
    if number
        && (error.starts_with("invalid type: map")
            || error.contains("invalid digit")
            || error.contains("out of range integral type")
            || error.contains("number too large")
            || error.contains("number too small")
            || error.contains("cannot parse integer"))
    {
        return whole(range);
    }
    let Some(rest) = error.strip_prefix("invalid type: ") else {
        return error.replace("decimal string", "string of digits");
    };
    let (got, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
    let got = match got.split_once(' ').map_or(got, |(w, _)| w) {
        "map" => "an object {…}",
        "sequence" => "a list […]",
        "string" => "a string",
        "boolean" => "true or false",
        "null" | "unit" => "null",
        _ => got,
    };
    let php = got == "a list […]";
    let expected = match expected.split_once(" at line ").map_or(expected, |(e, _)| e) {
        // A list for an object: what PHP's json_encode writes for an
        // empty array.
        "a map" if php => "an object {…} (PHP's json_encode writes an empty array as [], an empty object as {} only from new stdClass())".to_string(),
        "a map" => "an object {…}".to_string(),
        "a list" | "a sequence" => "a list […]".to_string(),
        e => e.replace("decimal string", "string of digits"),
    };
    format!("{got} where {expected} is expected")
}

/// The first key given twice in one JSON object, under one name or under
/// both (`beneficiaryId` and `beneficiary_id` are one field): a violation
/// naming it. serde would keep the last value, and a body built from a map
/// holding both spellings would be read as another request than the one
/// its writer meant (a claim for another patient). Any other fault of the
/// body is left to the decoder, which names it.
fn given_twice(desc: &MessageDescriptor, body: &[u8]) -> Option<JsonViolation> {
    use serde::de::DeserializeSeed as _;
    let found = std::cell::RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let walk = Walk {
        desc: Some(desc.clone()),
        path: &Path::Root,
        found: &found,
    };
    let _ = walk.deserialize(&mut de);
    found.into_inner()
}

/// [`given_twice`]'s walk of one JSON value of message `desc`, or of a
/// map field's object (`desc` `None`: its keys are checked, its values
/// skipped). Only messages and maps are walked; every other value is
/// skipped unread (`IgnoredAny`), and a path is written only for the key
/// found twice, so the walk costs about what parsing costs.
struct Walk<'a> {
    desc: Option<MessageDescriptor>,
    /// The path of this value, from the parents' segments.
    path: &'a Path<'a>,
    found: &'a std::cell::RefCell<Option<JsonViolation>>,
}

/// A path as a chain of segments, written out only when needed.
enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(Path::Root, name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    /// A repeated message field's list: each element walked as one.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let path = Path::Index(self.path, i);
            let item = Walk {
                desc: self.desc.clone(),
                path: &path,
                found: self.found,
            };
            if seq.next_element_seed(item)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::Error as _;
        use serde::de::IgnoredAny;
        // A field's proto name, and the key it was first given as.
        let mut seen: std::collections::HashMap<String, String> = Default::default();
        while let Some(key) = map.next_key::<String>()? {
            // arbitrary_precision's form of a number.
            if key.starts_with("$serde_json::private::") {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let field = self.desc.as_ref().and_then(|m| {
                m.get_field_by_json_name(&key)
                    .or_else(|| m.get_field_by_name(&key))
            });
            let name = field
                .as_ref()
                .map_or_else(|| key.clone(), |f| f.name().to_string());
            if let Some(first) = seen.insert(name.clone(), key.clone()) {
                let description = if first == key {
                    "given twice in one object: send each field once".to_string()
                } else {
                    format!(
                        "given twice in one object, as {first} and as {key} (two spellings of one field): send each field once"
                    )
                };
                *self.found.borrow_mut() = Some(JsonViolation {
                    field: Path::Field(self.path, &name).to_string(),
                    description,
                });
                return Err(A::Error::custom("a key given twice"));
            }
            let path = Path::Field(self.path, &name);
            match field {
                Some(f) if f.is_map() => map.next_value_seed(Walk {
                    desc: None,
                    path: &path,
                    found: self.found,
                })?,
                Some(f) => match f.kind() {
                    Kind::Message(m) => map.next_value_seed(Walk {
                        desc: Some(m),
                        path: &path,
                        found: self.found,
                    })?,
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                },
                // A map field's values, an unknown field (the decoder
                // refuses it, named): skipped.
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// serde's path of a JSON error (`lines[0].actCode`) with proto field
/// names (`lines[0].act_code`), and the field it ends on; an unknown
/// field's own name, as sent, is added from prost-reflect's error
/// (`unrecognized field name 'x'`).
fn proto_path(
    desc: &MessageDescriptor,
    path: &serde_path_to_error::Path,
    error: &str,
) -> (String, Option<prost_reflect::FieldDescriptor>) {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    let mut current = Some(desc.clone());
    let mut last = None;
    let push = |out: &mut String, name: &str| {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(name);
    };
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                let field = current.as_ref().and_then(|m| {
                    m.get_field_by_json_name(key)
                        .or_else(|| m.get_field_by_name(key))
                });
                match field {
                    Some(f) => {
                        push(&mut out, f.name());
                        current = match f.kind() {
                            Kind::Message(m) if !f.is_map() => Some(m),
                            _ => None,
                        };
                        last = Some(f);
                    }
                    None => {
                        push(&mut out, key);
                        current = None;
                        last = None;
                    }
                }
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    if let Some(name) = error
        .strip_prefix("unrecognized field name '")
        .and_then(|r| r.split_once('\''))
        .map(|(n, _)| n)
        && !out.ends_with(name)
    {
        push(&mut out, name);
        last = None;
    }
    if out.is_empty() {
        ("body".into(), None)
    } else {
        (out, last)
    }
}

/// The protobuf encoding of a `desc` message as canonical JSON, every field
/// shown (defaults too).
pub fn proto_to_json(desc: &MessageDescriptor, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let msg = DynamicMessage::decode(desc.clone(), bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(bytes.len() * 2);
    let options = SerializeOptions::new().skip_default_fields(false);
    msg.serialize_with_options(&mut serde_json::Serializer::new(&mut out), &options)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// One detail of an error (a `google.rpc.Status`'s `details`): its type's
/// full name (`google.rpc.BadRequest`), its protobuf bytes, and its JSON
/// form when the type is known.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorDetail {
    pub type_name: String,
    pub value: Vec<u8>,
    pub debug: Option<serde_json::Value>,
}

/// The details of an encoded `google.rpc.Status` (gRPC's
/// `grpc-status-details-bin`); empty when it does not decode.
pub fn error_details(status: &[u8]) -> Vec<ErrorDetail> {
    let Some(desc) = pool().get_message_by_name("google.rpc.Status") else {
        return Vec::new();
    };
    let Ok(status) = DynamicMessage::decode(desc, status) else {
        return Vec::new();
    };
    let Some(Value::List(details)) = status.get_field_by_name("details").map(|v| v.into_owned())
    else {
        return Vec::new();
    };
    details
        .iter()
        .filter_map(|d| {
            let any = d.as_message()?;
            let url = any.get_field_by_name("type_url")?.as_str()?.to_string();
            let value = any.get_field_by_name("value")?.as_bytes()?.to_vec();
            let type_name = url.rsplit('/').next().unwrap_or(&url).to_string();
            let debug = pool()
                .get_message_by_name(&type_name)
                .and_then(|desc| DynamicMessage::decode(desc, value.as_slice()).ok())
                .and_then(|m| serde::Serialize::serialize(&m, serde_json::value::Serializer).ok());
            Some(ErrorDetail {
                type_name,
                value,
                debug,
            })
        })
        .collect()
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

/// A message from canonical JSON; an unknown field, or one given twice, is
/// refused, named.
pub fn from_json<M: prost::Message + prost::Name + Default>(text: &str) -> Result<M, String> {
    let desc = pool()
        .get_message_by_name(&M::full_name())
        .ok_or_else(|| format!("{} is not in the descriptor set", M::full_name()))?;
    if let Some(v) = given_twice(&desc, text.as_bytes()) {
        return Err(format!("{}: {}", v.field, v.description));
    }
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
                ..Default::default()
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

    fn coordinate() -> MessageDescriptor {
        broker_method("/passerelle.scheme.v1.SchemeService/CoordinateClaim")
            .unwrap()
            .input()
    }

    #[test]
    fn a_json_body_is_the_protobuf_of_the_same_request() {
        let body =
            br#"{"schemeId":"CNSS","claimId":"C-1","lines":[{"actCode":"CONS","quantity":1}]}"#;
        let bytes = json_to_proto(&coordinate(), body).unwrap();
        let req: scheme::CoordinateClaimRequest = prost::Message::decode(bytes.as_slice()).unwrap();
        assert_eq!(req.claim_id, "C-1");
        assert_eq!(req.lines[0].act_code, "CONS");
        // Proto field names are accepted too (the canonical mapping).
        let snake = json_to_proto(&coordinate(), br#"{"claim_id":"C-1"}"#).unwrap();
        assert!(!snake.is_empty());
        let json = proto_to_json(&coordinate(), &bytes).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["lines"][0]["actCode"], "CONS");
        assert!(
            broker_method("/passerelle.partner.v1.MutuellePartner/AdjudicateRemainder").is_none(),
            "the mutuelles serve their contract, not the broker"
        );
        assert!(broker_method("/passerelle.scheme.v1.SchemeService/Nope").is_none());
        assert!(broker_method("passerelle.scheme.v1.SchemeService/CoordinateClaim").is_none());
    }

    #[test]
    fn a_json_violation_names_the_field_as_the_service_does() {
        let v = json_to_proto(
            &coordinate(),
            br#"{"lines":[{"quantity":1},{"actCoed":"X"}]}"#,
        )
        .unwrap_err();
        assert_eq!(v.field, "lines[1].actCoed");
        assert!(
            v.description.contains("unrecognized field name"),
            "{}",
            v.description
        );
        let v = json_to_proto(&coordinate(), br#"{"lines":[{"actCode":12}]}"#).unwrap_err();
        assert_eq!(v.field, "lines[0].act_code");
        for amount in ["5000.5", "1e3", "99999999999999999999"] {
            let body = format!(r#"{{"lines":[{{"billed":{amount}}}]}}"#);
            let v = json_to_proto(&coordinate(), body.as_bytes()).unwrap_err();
            assert_eq!(v.field, "lines[0].billed");
            assert!(
                v.description
                    .starts_with("not a whole number: a JSON number or a string of digits"),
                "{amount}: {}",
                v.description
            );
        }
        // Rust's own words (a string parsed as an integer, a conversion out
        // of range, a list for an object) become what the field takes.
        for (body, field, words) in [
            (
                r#"{"lines":[{"billed":"cinq mille"}]}"#,
                "lines[0].billed",
                "not a whole number: ",
            ),
            (
                r#"{"lines":[{"billed":"5 000"}]}"#,
                "lines[0].billed",
                "not a whole number: ",
            ),
            (
                r#"{"lines":[{"quantity":-1}]}"#,
                "lines[0].quantity",
                "not a whole number from 0 to 4294967295",
            ),
            (
                r#"{"diagnoses":{}}"#,
                "diagnoses",
                "an object {…} where a list […] is expected",
            ),
            (r#"{"stay":[]}"#, "stay", "a list […] where an object {…}"),
        ] {
            let v = json_to_proto(&coordinate(), body.as_bytes()).unwrap_err();
            assert_eq!(v.field, field, "{body}");
            assert!(
                v.description.starts_with(words),
                "{body}: {}",
                v.description
            );
            for rust in ["invalid digit", "integral type", "sequence", "map"] {
                assert!(!v.description.contains(rust), "{body}: {}", v.description);
            }
        }
        // A count is not an amount; PHP's note is for a list only.
        let v = json_to_proto(&coordinate(), br#"{"lines":[{"quantity":-1}]}"#).unwrap_err();
        assert!(!v.description.contains("amount"), "{}", v.description);
        let v = json_to_proto(&coordinate(), br#"{"lines":[{"billed":"x"}]}"#).unwrap_err();
        assert!(
            v.description
                .contains("an amount is in the currency's minor unit"),
            "{}",
            v.description
        );
        let v = json_to_proto(&coordinate(), br#"{"stay":"x"}"#).unwrap_err();
        assert!(!v.description.contains("PHP"), "{}", v.description);
        // A byte order mark is read past (RFC 8259 allows it).
        let bytes = json_to_proto(&coordinate(), b"\xEF\xBB\xBF{\"claimId\":\"C-1\"}").unwrap();
        let req: scheme::CoordinateClaimRequest = prost::Message::decode(bytes.as_slice()).unwrap();
        assert_eq!(req.claim_id, "C-1");
        let v = json_to_proto(&coordinate(), br#"{"payee":"PROVIDER"}"#).unwrap_err();
        assert_eq!(v.field, "payee");
        assert!(
            v.description
                .contains("one of PAYEE_UNSPECIFIED, PAYEE_PROVIDER, PAYEE_MEMBER"),
            "{}",
            v.description
        );
        let v = json_to_proto(&coordinate(), br#"{"claimId":"C-1""#).unwrap_err();
        assert_eq!(v.field, "body", "a truncated body");
        let v = json_to_proto(&coordinate(), b"[]").unwrap_err();
        assert_eq!(v.field, "body");
        let v = json_to_proto(&coordinate(), br#"{"claimId":"C-1"} x"#).unwrap_err();
        assert_eq!(v.field, "body");
    }

    /// A field given twice, under one spelling or both, is refused and
    /// named: serde would keep the last value, and a body built from a map
    /// holding `beneficiaryId` and `beneficiary_id` would be read as a
    /// claim for another patient.
    #[test]
    fn a_field_given_twice_is_refused() {
        for (body, field, words) in [
            (
                r#"{"beneficiaryId":"TG-1001","beneficiary_id":"TG-1002"}"#,
                "beneficiary_id",
                "as beneficiaryId and as beneficiary_id",
            ),
            (
                r#"{"schemeId":"CNSS","schemeId":"INAM"}"#,
                "scheme_id",
                "given twice in one object: send",
            ),
            (
                r#"{"lines":[{"billed":"1"},{"billed":2,"billed":"3"}]}"#,
                "lines[1].billed",
                "given twice",
            ),
            (
                r#"{"stay":{"stayId":"S","stay_id":"T"}}"#,
                "stay.stay_id",
                "as stayId and as stay_id",
            ),
            (r#"{"nope":1,"nope":2}"#, "nope", "given twice"),
        ] {
            let v = json_to_proto(&coordinate(), body.as_bytes()).unwrap_err();
            assert_eq!(
                (v.field.as_str(), v.description.contains(words)),
                (field, true),
                "{body}: {}",
                v.description
            );
        }
        // Numbers (read exactly, as maps inside serde_json), lists and the
        // same name in sibling objects are no duplicates.
        let body = br#"{"claimId":"C-1","lines":[{"billed":5000.0,"actCode":"A"},{"billed":1e3,"actCode":"B"}]}"#;
        assert!(given_twice(&coordinate(), body).is_none());
        // A body that is no JSON is left to the decoder, which names it.
        assert!(given_twice(&coordinate(), br#"{"claimId":"#).is_none());
    }

    #[test]
    fn error_details_read_as_json() {
        use tonic_types::{ErrorDetails, StatusExt};
        let mut d = ErrorDetails::with_error_info(
            "MODIFIED_REQUEST",
            "passerelle",
            std::collections::HashMap::<String, String>::new(),
        );
        d.add_bad_request_violation("lines[0].act_code", "empty");
        let status = tonic::Status::with_error_details(tonic::Code::InvalidArgument, "x", d);
        let details = error_details(status.details());
        assert_eq!(details.len(), 2, "{details:?}");
        let info = details
            .iter()
            .find(|d| d.type_name == "google.rpc.ErrorInfo")
            .unwrap();
        assert_eq!(info.debug.as_ref().unwrap()["reason"], "MODIFIED_REQUEST");
        let bad = details
            .iter()
            .find(|d| d.type_name == "google.rpc.BadRequest")
            .unwrap();
        assert_eq!(
            bad.debug.as_ref().unwrap()["fieldViolations"][0]["field"],
            "lines[0].act_code"
        );
        assert!(!bad.value.is_empty());
        assert!(error_details(b"\xff\xff").is_empty());
    }
}
