//! Authentication (an interceptor on every service) and per-method,
//! per-record authorization (helpers the handlers call).
//!
//! The interceptor maps the peer certificate to a configured identity and
//! puts an [`Auth`] in the request; an unknown identity is UNAUTHENTICATED.
//! Handlers then check what the caller may touch:
//! - scheme methods: scheme managers only, for their own scheme, or for a
//!   delegate of theirs (CANAM for CMSS and INPS);
//! - roster and products: a mutuelle for itself, or an operator;
//! - settlement: the scheme, the mutuelle or an operator, each for its own;
//! - administration: operators only.
//!
//! On a plaintext development listener there is no identity: requests are
//! trusted as the party they name.

use std::sync::Arc;

use tonic::{Request, Status};

use crate::identity::{Auth, Directory, Role};
use crate::net::{Reason, Refusals};
use crate::service::ServiceError;

/// The interceptor: authenticates every call of the broker's services.
#[derive(Clone)]
pub struct Authenticate {
    pub directory: Arc<Directory>,
    pub plaintext: bool,
    /// Unknown identities are counted there (audited in aggregate).
    pub refusals: Arc<Refusals>,
}

impl tonic::service::Interceptor for Authenticate {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if self.plaintext {
            req.extensions_mut().insert(Auth::Plaintext);
            return Ok(req);
        }
        let result = match req.peer_certs() {
            None => Err("no client certificate".to_string()),
            Some(certs) => match certs.first() {
                None => Err("no client certificate".to_string()),
                Some(ee) => self.directory.caller(ee.as_ref()),
            },
        };
        match result {
            Ok(caller) => {
                req.extensions_mut().insert(Auth::Caller(caller));
                Ok(req)
            }
            Err(why) => {
                self.refusals
                    .record(req.remote_addr(), Reason::UnknownIdentity, &why);
                Err(Status::unauthenticated(why))
            }
        }
    }
}

/// The caller of a request, as the interceptor found it.
pub(crate) fn auth_of<T>(req: &Request<T>) -> Auth {
    req.extensions()
        .get::<Auth>()
        .cloned()
        .unwrap_or(Auth::Missing)
}

/// The audit party: the authenticated identity, or the claimed one on a
/// plaintext listener, with the peer address.
pub(crate) fn party(
    auth: &Auth,
    peer: Option<std::net::SocketAddr>,
    claimed_kind: &str,
    claimed_id: &str,
) -> String {
    let who = match auth {
        Auth::Caller(c) => c.display(),
        Auth::Plaintext => format!("plaintext:{claimed_kind}:{claimed_id}"),
        Auth::Missing => "unauthenticated".to_string(),
    };
    match peer {
        Some(a) => format!("{who}@{a}"),
        None => who,
    }
}

fn denied(m: impl Into<String>) -> ServiceError {
    ServiceError::PermissionDenied(m.into())
}

fn missing() -> ServiceError {
    denied("the call was not authenticated")
}

/// The scheme a scheme method acts for: the caller's own (when the request
/// leaves it empty), or one it covers; the key of every claim.
pub(crate) fn scheme_scope(
    auth: &Auth,
    dir: &Directory,
    requested: &str,
) -> Result<String, ServiceError> {
    match auth {
        Auth::Plaintext => Ok(requested.to_string()),
        Auth::Caller(c) if c.role == Role::Scheme => {
            if requested.is_empty() {
                Ok(c.id.clone())
            } else if dir.scheme_covers(&c.id, requested) {
                Ok(requested.to_string())
            } else {
                Err(denied(format!(
                    "scheme {} may not act for scheme {requested}",
                    c.id
                )))
            }
        }
        Auth::Caller(c) => Err(denied(format!(
            "{} may not call scheme methods",
            c.display()
        ))),
        Auth::Missing => Err(missing()),
    }
}

/// The mutuelle a roster or product method acts for.
pub(crate) fn mutuelle_scope(auth: &Auth, requested: &str) -> Result<String, ServiceError> {
    match auth {
        Auth::Plaintext => Ok(requested.to_string()),
        Auth::Caller(c) if c.role == Role::Mutuelle => {
            if requested.is_empty() || requested == c.id {
                Ok(c.id.clone())
            } else {
                Err(denied(format!(
                    "mutuelle {} may not act for mutuelle {requested}",
                    c.id
                )))
            }
        }
        Auth::Caller(c) if c.role == Role::Operator => Ok(requested.to_string()),
        Auth::Caller(c) => Err(denied(format!(
            "{} may not manage a mutuelle's roster or products",
            c.display()
        ))),
        Auth::Missing => Err(missing()),
    }
}

/// Settlement between a scheme and a mutuelle: either party, or an operator.
/// Returns the (scheme, mutuelle) pair with empty parts filled from the
/// caller.
pub(crate) fn pair_scope(
    auth: &Auth,
    dir: &Directory,
    scheme: &str,
    mutuelle: &str,
) -> Result<(String, String), ServiceError> {
    match auth {
        Auth::Plaintext => Ok((scheme.to_string(), mutuelle.to_string())),
        Auth::Caller(c) => match c.role {
            Role::Operator => Ok((scheme.to_string(), mutuelle.to_string())),
            Role::Scheme => Ok((scheme_scope(auth, dir, scheme)?, mutuelle.to_string())),
            Role::Mutuelle => Ok((scheme.to_string(), mutuelle_scope(auth, mutuelle)?)),
        },
        Auth::Missing => Err(missing()),
    }
}

/// Administration: operators only.
pub(crate) fn operator_only(auth: &Auth) -> Result<(), ServiceError> {
    match auth {
        Auth::Plaintext => Ok(()),
        Auth::Caller(c) if c.role == Role::Operator => Ok(()),
        Auth::Caller(c) => Err(denied(format!("{} is not an operator", c.display()))),
        Auth::Missing => Err(missing()),
    }
}
