//! The OpenAPI 3.1 description of the JSON door, generated from the
//! descriptors compiled into this crate (paths, schemas, and the `.proto`
//! comments as descriptions). The checked-in copy,
//! `docs/openapi/passerelle.openapi.json`, is compared with this output by
//! a test (`tests/openapi.rs`); regenerate it with
//! `PASSERELLE_BLESS=1 cargo test -p passerelle-proto --test openapi`.
//!
//! One path per unary method of the broker's services
//! ([`crate::json::BROKER_SERVICES`]), `POST /<package>.<Service>/<Method>`;
//! streaming methods are gRPC-only and left out. Schemas follow the proto3
//! JSON mapping: lowerCamelCase names, 64-bit integers as strings, enums
//! by name, unknown fields refused.

use std::collections::BTreeMap;

use prost_reflect::{EnumDescriptor, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::json::{BROKER_SERVICES, pool};

/// The leading comment of the element at `path` in `file`, trimmed.
fn comments(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let loc = info.location.iter().find(|l| l.path == path)?;
    let text = loc.leading_comments.as_deref()?;
    // buf's lint exceptions are for buf, not for readers.
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("buf:lint:ignore"))
        .collect();
    let text = lines.join("\n").trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn describe(mut schema: Value, description: Option<String>) -> Value {
    if let (Some(d), Some(obj)) = (description, schema.as_object_mut()) {
        obj.insert("description".into(), Value::String(d));
    }
    schema
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// Collects the schemas of a message and of what it uses.
struct Schemas(BTreeMap<String, Value>);

impl Schemas {
    fn message(&mut self, m: &MessageDescriptor) -> Value {
        let name = m.full_name().to_string();
        if !self.0.contains_key(&name) {
            // Placeholder first: a message that refers to itself ends here.
            self.0.insert(name.clone(), Value::Null);
            let mut properties = Map::new();
            for f in m.fields() {
                let schema = self.field(&f);
                let schema = describe(schema, comments(&f.parent_file(), f.path()));
                properties.insert(f.json_name().to_string(), schema);
            }
            let schema = json!({
                "type": "object",
                "properties": properties,
                "additionalProperties": false,
            });
            self.0.insert(
                name.clone(),
                describe(schema, comments(&m.parent_file(), m.path())),
            );
        }
        reference(&name)
    }

    fn enumeration(&mut self, e: &EnumDescriptor) -> Value {
        let name = e.full_name().to_string();
        if !self.0.contains_key(&name) {
            let values: Vec<Value> = e.values().map(|v| Value::from(v.name())).collect();
            let schema = json!({ "type": "string", "enum": values });
            self.0.insert(
                name.clone(),
                describe(schema, comments(&e.parent_file(), e.path())),
            );
        }
        reference(&name)
    }

    fn field(&mut self, f: &FieldDescriptor) -> Value {
        if f.is_map()
            && let Kind::Message(entry) = f.kind()
        {
            let value = entry.map_entry_value_field();
            return json!({
                "type": "object",
                "additionalProperties": self.single(&value.kind()),
            });
        }
        let one = self.single(&f.kind());
        if f.is_list() {
            json!({ "type": "array", "items": one })
        } else {
            one
        }
    }

    fn single(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double | Kind::Float => json!({ "type": "number" }),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({ "type": "integer", "format": "int32" })
            }
            Kind::Uint32 | Kind::Fixed32 => {
                json!({ "type": "integer", "minimum": 0, "maximum": 4_294_967_295u64 })
            }
            // The canonical mapping writes 64-bit integers as strings (a
            // JavaScript number cannot hold them all); numbers are accepted
            // on input.
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                json!({ "type": ["string", "integer"], "format": "int64", "pattern": "^-?[0-9]+$" })
            }
            Kind::Uint64 | Kind::Fixed64 => {
                json!({ "type": ["string", "integer"], "format": "uint64", "minimum": 0, "pattern": "^[0-9]+$" })
            }
            Kind::Bool => json!({ "type": "boolean" }),
            Kind::String => json!({ "type": "string" }),
            Kind::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
            Kind::Message(m) => self.message(m),
            Kind::Enum(e) => self.enumeration(e),
        }
    }
}

/// The Connect error and its details.
fn error_schemas(schemas: &mut Schemas) {
    let details: Vec<Value> = [
        "google.rpc.BadRequest",
        "google.rpc.ErrorInfo",
        "google.rpc.PreconditionFailure",
        "google.rpc.LocalizedMessage",
    ]
    .iter()
    .map(|n| schemas.message(&pool().get_message_by_name(n).expect("google.rpc type")))
    .collect();
    let codes: Vec<Value> = crate::connect::CODES
        .iter()
        .map(|(_, name, _)| Value::from(*name))
        .collect();
    let statuses: Vec<String> = crate::connect::CODES
        .iter()
        .map(|(_, name, http)| format!("{name} {http}"))
        .collect();
    schemas.0.insert(
        "connect.Error".into(),
        json!({
            "type": "object",
            "description": format!("A Connect protocol error, always JSON, with the HTTP status of its code: {}.", statuses.join(", ")),
            "required": ["code"],
            "properties": {
                "code": { "type": "string", "enum": codes },
                "message": { "type": "string", "description": "For a person (English); the same text as the gRPC status message." },
                "details": { "type": "array", "items": reference("connect.ErrorDetail") },
            },
        }),
    );
    schemas.0.insert(
        "connect.ErrorDetail".into(),
        json!({
            "type": "object",
            "description": "One google.rpc error detail. A client without a protobuf library reads `debug`.",
            "required": ["type", "value"],
            "properties": {
                "type": { "type": "string", "description": "The detail's type, such as google.rpc.BadRequest, google.rpc.ErrorInfo or google.rpc.LocalizedMessage." },
                "value": { "type": "string", "contentEncoding": "base64", "description": "The detail's protobuf bytes (standard base64, no padding)." },
                "debug": { "description": "The same detail as JSON (proto3 mapping).", "anyOf": details },
            },
        }),
    );
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut schemas = Schemas(BTreeMap::new());
    let mut paths = Map::new();
    let mut tags = Vec::new();
    for service in BROKER_SERVICES {
        let s = pool()
            .get_service_by_name(service)
            .expect("a broker service");
        tags.push(describe(
            json!({ "name": s.full_name() }),
            comments(&s.parent_file(), s.path()),
        ));
        for m in s.methods().filter(crate::json::is_unary) {
            let input = schemas.message(&m.input());
            let output = schemas.message(&m.output());
            let description = comments(&m.parent_file(), m.path());
            // The first sentence, however many lines of the comment it
            // takes (the first line alone was cut mid-sentence).
            let summary = description
                .as_deref()
                .map(|d| {
                    let flat = d.split_whitespace().collect::<Vec<_>>().join(" ");
                    let end = flat.find(". ").unwrap_or(flat.len());
                    flat[..end].trim_end_matches('.').to_string()
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| m.name().to_string());
            let mut op = json!({
                "operationId": format!("{}.{}", s.full_name(), m.name()),
                "tags": [s.full_name()],
                "summary": summary,
                "parameters": [
                    { "$ref": "#/components/parameters/ConnectTimeoutMs" },
                    { "$ref": "#/components/parameters/ConnectProtocolVersion" },
                    { "$ref": "#/components/parameters/AcceptLanguage" },
                ],
                "requestBody": {
                    "required": true,
                    "content": { "application/json": { "schema": input } },
                },
                "responses": {
                    "200": {
                        "description": "The answer (every field shown, defaults too).",
                        "content": { "application/json": { "schema": output } },
                    },
                    "default": {
                        "description": "A Connect error.",
                        "content": { "application/json": { "schema": reference("connect.Error") } },
                    },
                },
            });
            if let Some(d) = description {
                op["description"] = Value::String(d);
            }
            paths.insert(
                format!("/{}/{}", s.full_name(), m.name()),
                json!({ "post": op }),
            );
        }
    }
    error_schemas(&mut schemas);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "passerelle: the JSON door",
            "version": "v1",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
            "description": "Every unary method of passerelle's public services, called with JSON over HTTPS (the Connect protocol, https://connectrpc.com/docs/protocol/): POST /<package>.<Service>/<Method> with Content-Type application/json (or application/proto for protobuf bytes). The caller is identified by its TLS client certificate only, as over gRPC; authorization, limits, audit and errors are those of gRPC. JSON follows the proto3 canonical mapping: the schemas name fields in lowerCamelCase (the .proto snake_case names are accepted too), 64-bit integers (every amount, in the currency's minor unit: F CFA has none) are strings in answers and strings or numbers in requests, enums by name, and a field a schema does not list is refused. Streaming methods (RosterService.ImportRoster) are served over gRPC only. Generated from the .proto files: do not edit by hand.",
        },
        "servers": [{ "url": "https://localhost:50051", "description": "passerelle dev" }],
        "security": [{ "mutualTLS": [] }],
        "tags": tags,
        "paths": paths,
        "components": {
            "securitySchemes": {
                "mutualTLS": {
                    "type": "mutualTLS",
                    "description": "A client certificate issued by the broker's CA (passerelle certs issue-client): scheme:<ID>, mutuelle:<ID> or operator:<ID>.",
                },
            },
            "parameters": {
                "ConnectTimeoutMs": {
                    "name": "Connect-Timeout-Ms",
                    "in": "header",
                    "required": false,
                    "description": "The call's deadline in milliseconds (1 to 10 digits); the broker's own request timeout applies when shorter.",
                    "schema": { "type": "string", "pattern": "^[0-9]{1,10}$" },
                },
                "ConnectProtocolVersion": {
                    "name": "Connect-Protocol-Version",
                    "in": "header",
                    "required": false,
                    "description": "1 when given.",
                    "schema": { "type": "string", "enum": ["1"] },
                },
                "AcceptLanguage": {
                    "name": "Accept-Language",
                    "in": "header",
                    "required": false,
                    "description": "When given, a refusal also carries a google.rpc.LocalizedMessage detail in French or English, whichever the header prefers (French when it names neither), for a person to read; code, message and the other details do not change. Its first 200 bytes are read.",
                    "schema": { "type": "string" },
                },
            },
            "schemas": schemas.0.into_iter().collect::<Map<String, Value>>(),
        },
    })
}

/// [`document`] as the checked-in file's text: pretty JSON, keys sorted,
/// one final newline.
pub fn text() -> String {
    let mut s = serde_json::to_string_pretty(&document()).expect("JSON");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unary_method_has_a_path_with_its_comment() {
        let d = document();
        let paths = d["paths"].as_object().unwrap();
        let eligibility = &paths["/passerelle.scheme.v1.SchemeService/CheckEligibility"]["post"];
        assert!(
            eligibility["description"]
                .as_str()
                .unwrap()
                .contains("complementary cover"),
            "{eligibility}"
        );
        assert!(!paths.contains_key("/passerelle.roster.v1.RosterService/ImportRoster"));
        assert_eq!(paths.len(), crate::json::unary_methods().len());
        let schemas = d["components"]["schemas"].as_object().unwrap();
        let line = &schemas["passerelle.scheme.v1.ClaimLine"]["properties"];
        assert_eq!(
            line["billed"]["type"],
            json!(["string", "integer"]),
            "int64: a string, or a number on input"
        );
        assert_eq!(line["actCode"]["type"], "string");
        assert!(schemas.values().all(|s| !s.is_null()));
        assert!(schemas.contains_key("google.rpc.BadRequest"));
    }
}
