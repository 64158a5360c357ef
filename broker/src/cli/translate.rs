//! `passerelle translate`: what the broker understands from one partner
//! payload, as JSON, or the error with its path. Each adapter reads its own
//! payloads (`passerelle_adapters::registry::translate`).

use std::path::Path;

use serde_json::Value;

/// Translates a payload; `Err` is the message (with its path). `config` is
/// the partner's adapter table (TOML); `dialect` overrides its `dialect`.
pub fn translate(
    adapter: &str,
    dialect: Option<&str>,
    config: Option<&Path>,
    file: &Path,
    currency: &str,
) -> Result<Value, String> {
    let mut settings: toml::Table = match config {
        None => toml::Table::new(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            toml::from_str(&text)
                .map_err(|e| format!("{}: {}", p.display(), e.to_string().trim_end()))?
        }
    };
    if let Some(d) = dialect {
        settings.insert("dialect".into(), toml::Value::String(d.into()));
    }
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let name = file.display().to_string();
    passerelle_adapters::registry::translate(adapter, settings, &bytes, &name, currency)
}
