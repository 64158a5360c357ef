//! Development certificates, with rcgen: a CA, the broker's server
//! certificate, client certificates carrying a partner identity, and a CRL.
//! `passerelle certs` and `passerelle dev` use it; production brings its own
//! PKI (see certs/README.md).
//!
//! A client's identity is a URI subject alternative name
//! `urn:passerelle:<role>:<id>`, role `scheme`, `mutuelle` or `operator`
//! (for example `urn:passerelle:scheme:CNSS`).

#![allow(
    clippy::disallowed_methods,
    reason = "certificate validity and serials are real time, not the broker's clock"
)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::identity::Role;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PkiError(pub String);

fn err(e: impl std::fmt::Display) -> PkiError {
    PkiError(e.to_string())
}

/// A certificate just issued.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// SHA-256 of the certificate's DER, hex with colons.
    pub fingerprint: String,
}

/// A folder of development certificates.
#[derive(Clone, Debug)]
pub struct Pki {
    dir: PathBuf,
}

/// The CA's parameters; its name is unique per CA (kept in `ca.name`), so
/// that another development CA is an unknown issuer, not a lookalike.
fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "passerelle");
    dn.push(DnType::CommonName, name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

fn random_serial() -> SerialNumber {
    // 16 random bytes from a fresh key's public part hash and the clock: the
    // serial only needs to be unique within this CA.
    let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    let mut bytes = Sha256::digest(seed.as_bytes())[..16].to_vec();
    bytes[0] &= 0x7f; // positive
    SerialNumber::from_slice(&bytes)
}

/// SHA-256 fingerprint of a DER certificate, "AB:CD:...".
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    std::fs::write(path, text).map_err(|e| err(format!("{}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    Ok(())
}

impl Pki {
    pub fn new(dir: impl Into<PathBuf>) -> Pki {
        Pki { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    fn revoked_list(&self) -> PathBuf {
        self.dir.join("revoked.txt")
    }

    /// The file stem of a client identity: "scheme-CNSS".
    pub fn client_stem(role: Role, id: &str) -> String {
        format!("{}-{id}", role.as_str())
    }

    pub fn client_paths(&self, role: Role, id: &str) -> (PathBuf, PathBuf) {
        let stem = Self::client_stem(role, id);
        (
            self.dir.join(format!("{stem}.crt")),
            self.dir.join(format!("{stem}.key")),
        )
    }

    /// Creates the CA (and an empty CRL) unless it exists. Returns whether it
    /// was created.
    pub fn init_ca(&self) -> Result<bool, PkiError> {
        if self.ca_cert().exists() && self.ca_key().exists() {
            return Ok(false);
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| err(format!("{}: {e}", self.dir.display())))?;
        let key = KeyPair::generate().map_err(err)?;
        let serial = random_serial();
        let name = format!(
            "passerelle development CA {}",
            hex::encode(&serial.as_ref()[..4])
        );
        std::fs::write(self.dir.join("ca.name"), &name).map_err(err)?;
        let mut p = ca_params(&name);
        p.not_before = OffsetDateTime::now_utc() - Duration::days(1);
        p.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
        p.serial_number = Some(serial);
        let cert = p.self_signed(&key).map_err(err)?;
        std::fs::write(self.ca_cert(), cert.pem()).map_err(err)?;
        write_private(&self.ca_key(), &key.serialize_pem())?;
        std::fs::write(self.revoked_list(), "").map_err(err)?;
        self.write_crl()?;
        Ok(true)
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let pem = std::fs::read_to_string(self.ca_key()).map_err(|e| {
            err(format!(
                "{}: {e} (run `passerelle certs ca` first)",
                self.ca_key().display()
            ))
        })?;
        let key = KeyPair::from_pem(&pem).map_err(err)?;
        let name = std::fs::read_to_string(self.dir.join("ca.name")).map_err(err)?;
        Ok(Issuer::new(ca_params(name.trim()), key))
    }

    fn issue(&self, mut p: CertificateParams, stem: &str) -> Result<Issued, PkiError> {
        let issuer = self.issuer()?;
        let key = KeyPair::generate().map_err(err)?;
        p.serial_number = Some(random_serial());
        let cert = p.signed_by(&key, &issuer).map_err(err)?;
        let cert_path = self.dir.join(format!("{stem}.crt"));
        let key_path = self.dir.join(format!("{stem}.key"));
        std::fs::write(&cert_path, cert.pem()).map_err(err)?;
        write_private(&key_path, &key.serialize_pem())?;
        Ok(Issued {
            cert: cert_path,
            key: key_path,
            fingerprint: fingerprint(cert.der()),
        })
    }

    /// The broker's server certificate for these DNS names and IP addresses.
    pub fn issue_server(
        &self,
        dns: &[String],
        ips: &[std::net::IpAddr],
    ) -> Result<Issued, PkiError> {
        let mut p = CertificateParams::new(dns.to_vec()).map_err(err)?;
        p.subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        p.distinguished_name
            .push(DnType::CommonName, "passerelle broker");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = OffsetDateTime::now_utc() - Duration::days(1);
        p.not_after = OffsetDateTime::now_utc() + Duration::days(825);
        self.issue(p, "server")
    }

    /// A client certificate carrying `urn:passerelle:<role>:<id>`, valid from
    /// `not_before` to `not_after` (tests make expired ones).
    pub fn issue_client_between(
        &self,
        role: Role,
        id: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Issued, PkiError> {
        let mut p = CertificateParams::default();
        let uri = crate::identity::san_uri(role, id);
        p.subject_alt_names = vec![SanType::URI(uri.clone().try_into().map_err(err)?)];
        p.distinguished_name
            .push(DnType::CommonName, format!("{}:{id}", role.as_str()));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = not_before;
        p.not_after = not_after;
        self.issue(p, &Self::client_stem(role, id))
    }

    /// A client certificate valid for `days`.
    pub fn issue_client(&self, role: Role, id: &str, days: i64) -> Result<Issued, PkiError> {
        let now = OffsetDateTime::now_utc();
        self.issue_client_between(
            role,
            id,
            now - Duration::minutes(5),
            now + Duration::days(days),
        )
    }

    /// Revokes a certificate issued by this CA and rewrites the CRL.
    pub fn revoke(&self, cert_path: &Path) -> Result<PathBuf, PkiError> {
        let pem =
            std::fs::read(cert_path).map_err(|e| err(format!("{}: {e}", cert_path.display())))?;
        let der = rustls_pemfile::certs(&mut pem.as_slice())
            .next()
            .ok_or_else(|| err(format!("{}: no certificate", cert_path.display())))?
            .map_err(err)?;
        let serial = crate::identity::serial_hex(&der).map_err(err)?;
        let mut list = std::fs::read_to_string(self.revoked_list()).unwrap_or_default();
        if !list.lines().any(|l| l == serial) {
            list.push_str(&serial);
            list.push('\n');
            std::fs::write(self.revoked_list(), list).map_err(err)?;
        }
        self.write_crl()
    }

    /// Writes crl.pem from the revoked list, signed by the CA.
    pub fn write_crl(&self) -> Result<PathBuf, PkiError> {
        let issuer = self.issuer()?;
        let list = std::fs::read_to_string(self.revoked_list()).unwrap_or_default();
        let now = OffsetDateTime::now_utc();
        let revoked_certs = list
            .lines()
            .filter(|l| !l.is_empty())
            .map(|hex_serial| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&hex::decode(hex_serial).map_err(err)?),
                    revocation_time: now - Duration::seconds(1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let number = (now.unix_timestamp() as u64).to_be_bytes();
        let crl = CertificateRevocationListParams {
            this_update: now - Duration::minutes(1),
            next_update: now + Duration::days(30),
            crl_number: SerialNumber::from_slice(&number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&issuer)
        .map_err(err)?;
        std::fs::write(self.crl(), crl.pem().map_err(err)?).map_err(err)?;
        Ok(self.crl())
    }
}
