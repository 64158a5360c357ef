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
    ]
    .into_iter()
    .flatten()
    .filter(|k| *k != kind.as_str())
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
    }
}
