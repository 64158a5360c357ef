//! The one place that knows every adapter type.
//!
//! A partner entry of the broker's config names its adapter and holds that
//! adapter's settings in a table of the same entry:
//!
//! ```toml
//! [[partners]]
//! id = "MUT-X"
//! adapter = "grpc"          # an AdapterKind
//! [partners.grpc]           # its table: the GrpcConfig
//! endpoint = "https://10.0.0.5:50061"
//! [partners.grpc.tls]
//! ca_file = "partners/mut-x-ca.pem"
//! ```
//!
//! [`AdapterConfig`] is that pair read as one tagged enum; every adapter
//! module gives its config struct a [`PartnerSettings`] impl. The matches of
//! this file are the only code that lists the adapter types: adding an
//! adapter is one module and its arm here (docs/adapters.md, "Adding an
//! adapter"); the compiler points at each match that lacks it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::fhir::FhirConfig;
use crate::grpc::GrpcConfig;
use crate::rules::RulesConfig;
#[cfg(any(test, feature = "test-util"))]
use crate::template::TemplateConfig;
use crate::xml::XmlConfig;
use crate::{Adapter, RulesData};

/// The value of a partner's `adapter` key. Its names come from the derive
/// (`FhirR4` is `"fhir-r4"`), for reading and writing alike.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, strum::EnumIter, strum::EnumString, strum::IntoStaticStr,
)]
#[strum(serialize_all = "kebab-case")]
pub enum AdapterKind {
    /// The broker adjudicates on the mutuelle's declared products and keeps
    /// its ceilings (a mutuelle with no system).
    Rules,
    /// A partner implementing `passerelle.partner.v1.MutuellePartner`.
    Grpc,
    /// A FHIR R4 server (standard, or openIMIS's dialect).
    FhirR4,
    /// A legacy XML-over-HTTP system, mapped declaratively.
    XmlHttp,
    /// The template adapter (adapters/src/template.rs), registered as a new
    /// adapter would be; test builds only.
    #[cfg(any(test, feature = "test-util"))]
    Template,
}

impl<'de> Deserialize<'de> for AdapterKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(|_| {
            let known: Vec<String> = <AdapterKind as strum::IntoEnumIterator>::iter()
                .map(|k| format!("`{}`", k.as_str()))
                .collect();
            serde::de::Error::custom(format!(
                "unknown variant `{name}`, expected one of {}",
                known.join(", ")
            ))
        })
    }
}

/// The settings of one partner's adapter: its `adapter` key and the table of
/// that adapter (`[partners.grpc]`, `[partners.fhir]`...).
#[derive(Clone, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per partner, read once at start-up"
)]
pub enum AdapterConfig {
    Rules(RulesConfig),
    Grpc(GrpcConfig),
    FhirR4(FhirConfig),
    XmlHttp(XmlConfig),
    #[cfg(any(test, feature = "test-util"))]
    Template(TemplateConfig),
}

/// What the registry needs of each adapter's config struct; implemented
/// beside the struct, in the adapter's module.
pub trait PartnerSettings {
    /// The deadline of one call, when the settings have one: the partner's
    /// deadline unless its entry sets `deadline_ms`.
    fn timeout_ms(&self) -> Option<u64> {
        None
    }

    /// The partner's address (`endpoint`, `base_url`, `url`), when it is
    /// reached over a network.
    fn url(&self) -> Option<&str> {
        None
    }

    /// Every file path of the settings (TLS material, secrets): relative
    /// ones are resolved against the config file's folder before `build`.
    fn files(&mut self) -> Vec<&mut PathBuf> {
        Vec::new()
    }

    /// Builds the adapter (files already resolved).
    fn build(&self, partner: &PartnerContext) -> Result<Arc<dyn Adapter>, String>;
}

/// What an adapter may need besides its settings.
pub struct PartnerContext {
    /// The mutuelle this adapter reaches.
    pub mutuelle_id: String,
    /// The broker's store, for the rules adapter.
    pub data: Arc<dyn RulesData>,
}

/// The registration of one adapter type.
struct Entry {
    /// The settings table, `[partners.<table>]`.
    table: &'static str,
    /// Reads the settings from that table (an empty one when it is absent).
    read: fn(toml::Table) -> Result<AdapterConfig, String>,
    /// `passerelle translate`: what the broker reads from one payload of
    /// such a partner (settings table, payload, its file name, currency).
    translate: Option<Translate>,
}

type Translate = fn(toml::Table, &[u8], &str, &str) -> Result<serde_json::Value, String>;

impl AdapterKind {
    /// The registry: each adapter type's table, settings and payload reader.
    fn entry(self) -> Entry {
        match self {
            AdapterKind::Rules => Entry {
                table: "rules",
                read: |t| read(t).map(AdapterConfig::Rules),
                translate: None,
            },
            AdapterKind::Grpc => Entry {
                table: "grpc",
                read: |t| read(t).map(AdapterConfig::Grpc),
                translate: None,
            },
            AdapterKind::FhirR4 => Entry {
                table: "fhir",
                read: |t| read(t).map(AdapterConfig::FhirR4),
                translate: Some(crate::fhir::translate::translate),
            },
            AdapterKind::XmlHttp => Entry {
                table: "xml",
                read: |t| read(t).map(AdapterConfig::XmlHttp),
                translate: Some(crate::xml::translate::translate),
            },
            #[cfg(any(test, feature = "test-util"))]
            AdapterKind::Template => Entry {
                table: "template",
                read: |t| read(t).map(AdapterConfig::Template),
                translate: None,
            },
        }
    }

    /// The name written in a config (`adapter = "fhir-r4"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The partner entry's table holding this adapter's settings.
    pub fn table(self) -> &'static str {
        self.entry().table
    }
}

/// A partner's adapter table given to `passerelle translate --config`, read
/// as the broker reads it (the adapter's own config: unknown keys refused,
/// named). `fill` puts in what translate does not need and the config
/// requires (an endpoint, a request template), where the file left it out.
pub(crate) fn translate_settings<T: serde::de::DeserializeOwned>(
    mut table: toml::Table,
    header: &str,
    fill: impl FnOnce(&mut toml::Table),
) -> Result<T, String> {
    if table.contains_key("partners") {
        return Err(format!(
            "give the adapter's table itself: the keys of [{header}] at the top of the file, \
             without the [{header}] header"
        ));
    }
    fill(&mut table);
    table
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())
}

/// `passerelle translate --adapter NAME`: reads one payload of a partner of
/// that adapter, with the partner's settings table (other keys of it are
/// ignored), as JSON; `Err` is the message, with the path at fault.
pub fn translate(
    adapter: &str,
    settings: toml::Table,
    payload: &[u8],
    file: &str,
    currency: &str,
) -> Result<serde_json::Value, String> {
    let kind: AdapterKind = toml::Value::String(adapter.to_string())
        .try_into()
        .map_err(|e: toml::de::Error| format!("--adapter {adapter:?}: {}", e.message()))?;
    let translate = kind.entry().translate.ok_or_else(|| {
        format!("--adapter {adapter:?}: this adapter has no partner payload to read")
    })?;
    translate(settings, payload, file, currency)
}

impl AdapterConfig {
    pub fn kind(&self) -> AdapterKind {
        match self {
            AdapterConfig::Rules(_) => AdapterKind::Rules,
            AdapterConfig::Grpc(_) => AdapterKind::Grpc,
            AdapterConfig::FhirR4(_) => AdapterKind::FhirR4,
            AdapterConfig::XmlHttp(_) => AdapterKind::XmlHttp,
            #[cfg(any(test, feature = "test-util"))]
            AdapterConfig::Template(_) => AdapterKind::Template,
        }
    }

    /// Whether the partner's protocol offers no cancel at all, as its
    /// adapter says (openIMIS over FHIR): the broker cancels in its own
    /// accounts and a person cancels at the partner. Every other partner
    /// must take a cancel (a gRPC partner's UNIMPLEMENTED is a fault).
    pub fn cancels_by_hand(&self) -> bool {
        matches!(self, AdapterConfig::FhirR4(c) if c.dialect == crate::fhir::Dialect::Openimis)
    }

    fn settings(&self) -> &dyn PartnerSettings {
        match self {
            AdapterConfig::Rules(c) => c,
            AdapterConfig::Grpc(c) => c,
            AdapterConfig::FhirR4(c) => c,
            AdapterConfig::XmlHttp(c) => c,
            #[cfg(any(test, feature = "test-util"))]
            AdapterConfig::Template(c) => c,
        }
    }

    fn settings_mut(&mut self) -> &mut dyn PartnerSettings {
        match self {
            AdapterConfig::Rules(c) => c,
            AdapterConfig::Grpc(c) => c,
            AdapterConfig::FhirR4(c) => c,
            AdapterConfig::XmlHttp(c) => c,
            #[cfg(any(test, feature = "test-util"))]
            AdapterConfig::Template(c) => c,
        }
    }

    /// Reads a partner entry's adapter: `adapter` and that adapter's table,
    /// from the keys of the entry the broker did not take. Another key (the
    /// table of another adapter, a typo) is an error naming it.
    pub fn from_entry(mut entry: toml::Table) -> Result<AdapterConfig, String> {
        let kind: AdapterKind = entry
            .remove("adapter")
            .ok_or("missing field `adapter`")?
            .try_into()
            .map_err(|e: toml::de::Error| format!("adapter: {}", e.message()))?;
        let name = kind.as_str();
        let Entry { table, read, .. } = kind.entry();
        let settings = match entry.remove(table) {
            None => toml::Table::new(),
            Some(toml::Value::Table(t)) => t,
            Some(_) => return Err(format!("{table}: must be a table, [partners.{table}]")),
        };
        if let Some(other) = entry.keys().next() {
            return Err(format!(
                "{other}: unknown field for a partner whose adapter is {name:?}, which takes a [partners.{table}] table"
            ));
        }
        let present = !settings.is_empty();
        read(settings).map_err(|e| {
            if present {
                format!("{table}: {e}")
            } else {
                format!("{table}: adapter {name:?} needs a [partners.{table}] table ({e})")
            }
        })
    }

    /// The deadline the adapter's settings give a call, if any.
    pub fn timeout_ms(&self) -> Option<u64> {
        self.settings().timeout_ms()
    }

    /// Refuses a partner reached in plaintext (`http://`) anywhere but on
    /// this machine, unless its entry says the network is private and
    /// trusted (`allow_plaintext`): claims carry diagnoses, and the
    /// partner's credentials would cross the network in clear.
    pub fn check_transport(&self, allow_plaintext: bool) -> Result<(), String> {
        let Some(url) = self.settings().url() else {
            return Ok(());
        };
        let Some(rest) = url.strip_prefix("http://") else {
            return Ok(());
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = match authority.rsplit_once(':') {
            // An IPv6 address in brackets keeps its colons.
            Some((h, port)) if !h.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        let host = host.trim_matches(['[', ']']);
        let local = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if local || allow_plaintext {
            return Ok(());
        }
        Err(format!(
            "{url:?}: plaintext http:// to another machine carries claims (diagnoses included) and credentials in clear: use https:// with a [tls] table, or set allow_plaintext = true on this [[partners]] entry if the network is private and trusted (a LAN, a VPN)"
        ))
    }

    /// Builds the adapter of one partner; `base` resolves relative paths.
    pub fn build(
        &self,
        mutuelle_id: &str,
        base: &Path,
        data: Arc<dyn RulesData>,
    ) -> Result<Arc<dyn Adapter>, String> {
        self.resolved(base).settings().build(&PartnerContext {
            mutuelle_id: mutuelle_id.to_string(),
            data,
        })
    }

    /// Builds the adapter of one partner as the broker holds it: rebuilt
    /// when the files of its settings change ([`LiveAdapter`]).
    pub fn live(
        &self,
        mutuelle_id: &str,
        base: &Path,
        data: Arc<dyn RulesData>,
    ) -> Result<LiveAdapter, String> {
        let config = self.resolved(base);
        let context = PartnerContext {
            mutuelle_id: mutuelle_id.to_string(),
            data,
        };
        // The stamp is taken before the build: a file that changes between
        // the two is read again at the next check.
        let stamp = stamp(&config);
        let adapter = config.settings().build(&context)?;
        Ok(LiveAdapter {
            settings: Some((config, context)),
            current: RwLock::new((adapter, stamp)),
        })
    }

    /// A copy whose relative file paths are resolved against `base`.
    fn resolved(&self, base: &Path) -> AdapterConfig {
        let mut resolved = self.clone();
        for f in resolved.settings_mut().files() {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
        resolved
    }

    /// The files its settings name (TLS material, secrets).
    fn paths(&self) -> Vec<PathBuf> {
        let mut copy = self.clone();
        copy.settings_mut()
            .files()
            .into_iter()
            .map(|p| p.clone())
            .collect()
    }
}

/// What the files of a partner's settings hold now: a digest per file
/// (`None`: unreadable).
type Stamp = Vec<Option<[u8; 32]>>;

fn stamp(config: &AdapterConfig) -> Stamp {
    use sha2::Digest;
    config
        .paths()
        .iter()
        .map(|p| {
            std::fs::read(p)
                .ok()
                .map(|b| sha2::Sha256::digest(b).into())
        })
        .collect()
}

/// A partner's adapter as the broker holds it. When the files its settings
/// name change (CA, client certificate and key, token or password files),
/// or when the broker reloads its TLS material (SIGHUP), the adapter is
/// built again from the same settings and replaces the old one. The old one
/// goes when its calls in flight end, and with it its connections (the
/// HTTP adapters' pools, the grpc adapter's channel): no connection made
/// with old settings is used for a new call. A rebuild that fails (a file
/// missing, unreadable or invalid) keeps the adapter in force and reports
/// the error, as the broker's own TLS reload does: a bad file never
/// weakens the connection.
pub struct LiveAdapter {
    /// What it is built from; `None`: an adapter given as is (never
    /// rebuilt).
    settings: Option<(AdapterConfig, PartnerContext)>,
    current: RwLock<(Arc<dyn Adapter>, Stamp)>,
}

impl From<Arc<dyn Adapter>> for LiveAdapter {
    /// An adapter that is never rebuilt (tests, tools).
    fn from(adapter: Arc<dyn Adapter>) -> Self {
        LiveAdapter {
            settings: None,
            current: RwLock::new((adapter, Vec::new())),
        }
    }
}

impl LiveAdapter {
    /// The files its settings name (TLS material, secrets), resolved: for
    /// the broker's certificate expiry metrics.
    pub fn files(&self) -> Vec<PathBuf> {
        self.settings
            .as_ref()
            .map(|(config, _)| config.paths())
            .unwrap_or_default()
    }

    /// The adapter in force; a call holds it until it ends.
    pub fn get(&self) -> Arc<dyn Adapter> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Rebuilds the adapter if its files changed, or always with `force`
    /// (settings that name no file are never rebuilt: nothing can have
    /// changed). `Ok(true)`: rebuilt.
    pub fn reload(&self, force: bool) -> Result<bool, String> {
        let Some((config, context)) = &self.settings else {
            return Ok(false);
        };
        let now = stamp(config);
        if now.is_empty() {
            return Ok(false);
        }
        let changed = {
            let current = self.current.read().unwrap_or_else(|p| p.into_inner());
            current.1 != now
        };
        if !changed && !force {
            return Ok(false);
        }
        let adapter = config.settings().build(context)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (adapter, now);
        Ok(true)
    }
}

/// Reads one adapter's table into its config struct.
fn read<T: DeserializeOwned>(t: toml::Table) -> Result<T, String> {
    T::deserialize(t).map_err(|e| e.message().to_string())
}

/// Read from the keys of a partner entry that the broker's own fields did
/// not take (the entry flattens it).
impl<'de> Deserialize<'de> for AdapterConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entry = toml::Table::deserialize(d)?;
        AdapterConfig::from_entry(entry).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> Result<AdapterConfig, String> {
        AdapterConfig::from_entry(toml::from_str(text).unwrap())
    }

    #[test]
    fn an_entry_reads_as_its_adapter() {
        let c = entry(
            "adapter = \"grpc\"\n[grpc]\nendpoint = \"http://127.0.0.1:1\"\ntimeout_ms = 700\n",
        )
        .unwrap();
        assert_eq!(c.kind(), AdapterKind::Grpc);
        assert_eq!(c.timeout_ms(), Some(700));
        let c = entry("adapter = \"rules\"\n").unwrap();
        assert_eq!(c.kind(), AdapterKind::Rules);
        assert_eq!(c.timeout_ms(), None);
        assert_eq!(AdapterKind::FhirR4.as_str(), "fhir-r4");
        assert_eq!(AdapterKind::XmlHttp.table(), "xml");
    }

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for k in <AdapterKind as strum::IntoEnumIterator>::iter() {
            let v = toml::Value::String(k.as_str().into());
            assert_eq!(v.try_into::<AdapterKind>().unwrap(), k);
        }
        assert_eq!(AdapterKind::XmlHttp.as_str(), "xml-http");
    }

    #[test]
    fn errors_name_the_key() {
        let e = entry("adapter = \"grpc\"\n").unwrap_err();
        assert!(
            e.starts_with("grpc: adapter \"grpc\" needs a [partners.grpc] table"),
            "{e}"
        );
        assert!(e.contains("endpoint"), "{e}");
        let e = entry("adapter = \"grpc\"\n[grpc]\nendpont = \"x\"\n").unwrap_err();
        assert!(e.starts_with("grpc: unknown field `endpont`"), "{e}");
        let e = entry("adapter = \"rules\"\n[grpc]\nendpoint = \"x\"\n").unwrap_err();
        assert!(e.starts_with("grpc: unknown field"), "{e}");
        assert!(e.contains("[partners.rules]"), "{e}");
        let e = entry("adapter = \"grcp\"\n").unwrap_err();
        assert!(e.starts_with("adapter: unknown variant `grcp`"), "{e}");
        let e = entry("name = \"x\"\n").unwrap_err();
        assert!(e.contains("adapter"), "{e}");
    }

    #[tokio::test]
    async fn relative_files_resolve_against_the_config_folder() {
        let c = entry(
            "adapter = \"grpc\"\n[grpc]\nendpoint = \"http://127.0.0.1:1\"\ntoken_file = \"no-such-token\"\n",
        )
        .unwrap();
        let data: Arc<dyn RulesData> = Arc::new(crate::rules::NoStore);
        let e = c
            .build("MUT-X", Path::new("/no-such-folder"), data)
            .err()
            .expect("the token file is missing");
        assert!(e.contains("/no-such-folder/no-such-token"), "{e}");
    }
}
