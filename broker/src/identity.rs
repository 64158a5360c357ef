//! Who is calling: the identity in a client certificate, mapped to a
//! configured scheme, mutuelle or operator.

use std::collections::{HashMap, HashSet};

use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::der::oid::AssociatedOid;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// What a caller may do, broadly; per-record checks come on top.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A scheme manager or delegate (CNSS, INAM, CANAM, CMSS, INPS).
    Scheme,
    /// A mutuelle (its system or its clerk).
    Mutuelle,
    /// An operator of the broker.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Scheme => "scheme",
            Role::Mutuelle => "mutuelle",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "scheme" => Some(Role::Scheme),
            "mutuelle" => Some(Role::Mutuelle),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// The SAN URI that carries an identity.
pub fn san_uri(role: Role, id: &str) -> String {
    format!("urn:passerelle:{}:{id}", role.as_str())
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    pub id: String,
    /// The person, when the call comes from the console (a signed-in
    /// user acting as this identity); `None` for a certificate.
    pub user: Option<String>,
    /// A mutuelle's clerk signed in to the console: reads, and works on
    /// members, but neither proposes nor approves a change that needs two
    /// people (`service::approvals`). `false` for a certificate.
    pub clerk: bool,
}

impl Caller {
    pub fn display(&self) -> String {
        match &self.user {
            None => format!("{}:{}", self.role.as_str(), self.id),
            Some(u) => format!("{}:{}/user:{u}", self.role.as_str(), self.id),
        }
    }
}

/// The console account's login in an identity as [`Caller::display`]
/// writes it ("mutuelle:MUT-A/user:awa" is `awa`); `None` for a
/// certificate's.
pub fn person_login(identity: &str) -> Option<&str> {
    identity.rsplit_once("/user:").map(|(_, login)| login)
}

/// How a call was authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// A client certificate naming a configured identity.
    Caller(Caller),
    /// A plaintext development listener on loopback: no identity; the
    /// request's own scheme or mutuelle id is trusted.
    Plaintext,
    /// The request did not pass the authentication interceptor: refused.
    Missing,
}

/// Every identity allowed to call, from the config.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    pub schemes: HashSet<String>,
    /// Delegate scheme -> parent scheme.
    pub parents: HashMap<String, String>,
    pub mutuelles: HashSet<String>,
    pub operators: HashSet<String>,
}

impl Directory {
    /// The configured caller a certificate names, or why not.
    pub fn caller(&self, end_entity_der: &[u8]) -> Result<Caller, String> {
        let uris = san_uris(end_entity_der)?;
        let (role, id) = uris
            .iter()
            .find_map(|u| {
                let rest = u.strip_prefix("urn:passerelle:")?;
                let (role, id) = rest.split_once(':')?;
                Some((Role::parse(role)?, id.to_string()))
            })
            .ok_or("the certificate carries no urn:passerelle:<role>:<id> identity")?;
        let known = match role {
            Role::Scheme => self.schemes.contains(&id),
            Role::Mutuelle => self.mutuelles.contains(&id),
            Role::Operator => self.operators.contains(&id),
        };
        if !known {
            return Err(format!("unknown identity {}", san_uri(role, &id)));
        }
        Ok(Caller {
            role,
            id,
            user: None,
            clerk: false,
        })
    }

    /// True when `caller_scheme` may act for `scheme`: itself, or its parent.
    pub fn scheme_covers(&self, caller_scheme: &str, scheme: &str) -> bool {
        caller_scheme == scheme || self.parents.get(scheme).is_some_and(|p| p == caller_scheme)
    }
}

fn parse(der: &[u8]) -> Result<Certificate, String> {
    Certificate::from_der(der).map_err(|e| format!("unreadable certificate: {e}"))
}

/// The URI subject alternative names of a certificate.
pub fn san_uris(der: &[u8]) -> Result<Vec<String>, String> {
    let cert = parse(der)?;
    let mut out = Vec::new();
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id == SubjectAltName::OID {
            let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
                .map_err(|e| format!("bad SAN: {e}"))?;
            for name in san.0 {
                if let GeneralName::UniformResourceIdentifier(uri) = name {
                    out.push(uri.to_string());
                }
            }
        }
    }
    Ok(out)
}

/// A certificate's serial number, hex.
pub fn serial_hex(der: &[u8]) -> Result<String, String> {
    Ok(hex::encode(
        parse(der)?.tbs_certificate.serial_number.as_bytes(),
    ))
}
