//! The one place that knows every adapter type. Adding an adapter means a
//! variant in [`crate::AdapterKind`], a settings field in [`AdapterSettings`]
//! and an arm in [`build`]; the compiler finds the rest.

use std::sync::Arc;

use serde::Deserialize;

use crate::grpc::{GrpcAdapter, GrpcConfig};
use crate::rules::{RulesAdapter, RulesConfig};
use crate::{Adapter, AdapterKind, RulesData};

/// Per-adapter settings of one partner, as tables of its config entry
/// (`[partners.grpc]`, `[partners.rules]`). Only the table of the partner's
/// adapter type may be present.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterSettings {
    #[serde(default)]
    pub grpc: Option<GrpcConfig>,
    #[serde(default)]
    pub rules: Option<RulesConfig>,
    #[serde(default)]
    pub fhir: Option<crate::fhir::FhirConfig>,
    #[serde(default)]
    pub xml: Option<crate::xml::XmlConfig>,
}

/// Builds the adapter of one partner.
pub fn build(
    mutuelle_id: &str,
    kind: AdapterKind,
    settings: &AdapterSettings,
    data: Arc<dyn RulesData>,
) -> Result<Arc<dyn Adapter>, String> {
    let present: Vec<&str> = [
        settings.grpc.as_ref().map(|_| "grpc"),
        settings.rules.as_ref().map(|_| "rules"),
        settings.fhir.as_ref().map(|_| "fhir"),
        settings.xml.as_ref().map(|_| "xml"),
    ]
    .into_iter()
    .flatten()
    .filter(|k| *k != table_of(kind))
    .collect();
    if let Some(other) = present.first() {
        return Err(format!(
            "table [{other}] given for a partner whose adapter is {:?}",
            kind.as_str()
        ));
    }
    match kind {
        AdapterKind::Rules => Ok(Arc::new(RulesAdapter::new(mutuelle_id, data))),
        AdapterKind::Grpc => {
            let cfg = settings
                .grpc
                .as_ref()
                .ok_or("adapter \"grpc\" needs a [grpc] table with an endpoint")?;
            Ok(Arc::new(GrpcAdapter::new(cfg)?))
        }
        AdapterKind::FhirR4 => {
            let cfg = settings
                .fhir
                .as_ref()
                .ok_or("adapter \"fhir-r4\" needs a [fhir] table with a base_url")?;
            Ok(Arc::new(crate::fhir::FhirAdapter::new(mutuelle_id, cfg)?))
        }
        AdapterKind::XmlHttp => {
            let cfg = settings
                .xml
                .as_ref()
                .ok_or("adapter \"xml-http\" needs an [xml] table with the mapping")?;
            Ok(Arc::new(crate::xml::XmlAdapter::new(cfg)?))
        }
    }
}

/// The settings table of each adapter type.
pub fn table_of(kind: AdapterKind) -> &'static str {
    match kind {
        AdapterKind::Rules => "rules",
        AdapterKind::Grpc => "grpc",
        AdapterKind::FhirR4 => "fhir",
        AdapterKind::XmlHttp => "xml",
    }
}
