//! `passerelle certs`: development certificates.

use super::*;

/// `passerelle certs ...`: development certificates, in `--dir`, else in
/// the folder the global `--certs` names (where the client commands look
/// for them), `.passerelle/certs` by default.
pub fn certs(cmd: crate::cli::CertsCmd, certs: &std::path::Path) -> ExitCode {
    use crate::cli::CertsCmd;
    use crate::pki::Pki;
    let folder = |dir: Option<std::path::PathBuf>| dir.unwrap_or_else(|| certs.to_path_buf());
    let run = || -> Result<(), String> {
        match cmd {
            CertsCmd::Ca { dir } => {
                let pki = Pki::new(folder(dir));
                let created = pki.init_ca().map_err(|e| e.to_string())?;
                outln!(
                    "{} {}",
                    if created { "created" } else { "already there:" },
                    pki.ca_cert().display()
                );
            }
            CertsCmd::Server { dir, dns, ip } => {
                let issued = Pki::new(folder(dir))
                    .issue_server(&dns, &ip)
                    .map_err(|e| e.to_string())?;
                outln!(
                    "{}\n{}\nsha256 {}",
                    issued.cert.display(),
                    issued.key.display(),
                    issued.fingerprint
                );
            }
            CertsCmd::Client {
                dir,
                role,
                id,
                days,
            } => {
                let role =
                    Role::parse(&role).ok_or("--role must be scheme, mutuelle or operator")?;
                let issued = Pki::new(folder(dir))
                    .issue_client(role, &id, days)
                    .map_err(|e| e.to_string())?;
                outln!(
                    "{}\n{}\nidentity {}\nsha256 {}",
                    issued.cert.display(),
                    issued.key.display(),
                    crate::identity::san_uri(role, &id),
                    issued.fingerprint
                );
            }
            CertsCmd::Revoke { dir, cert } => {
                let crl = Pki::new(folder(dir))
                    .revoke(&cert)
                    .map_err(|e| e.to_string())?;
                outln!(
                    "{} revoked; {} rewritten (brokers reload it, or send SIGHUP)",
                    cert.display(),
                    crl.display()
                );
            }
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{} {e}", crate::cli::output::Lang::of_process().t("error:"));
            ExitCode::FAILURE
        }
    }
}
