//! `passerelle users`: console accounts, on the broker's own store (run on
//! the broker's host, like `migrate`). Passwords are never typed on the
//! command line: `add` and `reset` make a random one and print it once.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use crate::console::i18n::Lang;
use crate::service::Broker;
use crate::service::users::{NewUser, random_token, totp_code, totp_url};
use crate::store::users::{User, UserRole};

#[derive(Subcommand, Debug)]
pub enum UsersCmd {
    /// Create an account; prints its temporary password (and, for an
    /// operator, the second factor's secret).
    Add {
        /// Lower case: a-z, 0-9, . _ - @.
        login: String,
        /// The person's name, as the console shows it.
        #[arg(long)]
        name: String,
        /// clerk, manager, scheme or operator.
        #[arg(long)]
        role: String,
        /// The mutuelle(s) of a clerk or manager (repeat for a federation),
        /// or the scheme of scheme staff.
        #[arg(long)]
        scope: Vec<String>,
        /// The language the console shows this account: fr or en
        /// (default: the browser's). Not --lang, which is the language of
        /// this command's messages.
        #[arg(long, value_parser = ["fr", "en"])]
        console_lang: Option<String>,
    },
    /// Replace an account's password (prints the new one); ends its
    /// sessions. `--totp` makes a new second factor too.
    Reset {
        login: String,
        #[arg(long)]
        totp: bool,
    },
    /// Disable an account; ends its sessions.
    Disable { login: String },
    /// Enable a disabled account.
    Enable { login: String },
    /// End every session of an account.
    Revoke { login: String },
    /// List the accounts.
    List,
    /// Print an account's current second-factor code (development and
    /// support on the broker's host).
    Code { login: String },
}

/// Where the accounts are: a broker's configuration, or a `dev` data folder.
pub struct Target {
    pub config: Option<PathBuf>,
    pub data_dir: PathBuf,
}

async fn broker(target: &Target, lang: Lang) -> Result<Arc<Broker>, String> {
    // A database held by the running broker (SQLite): said with the way
    // round it, the console's users page.
    let said = |e: crate::server::StartError| {
        let s = crate::cli::start_error(lang, &e);
        match e {
            crate::server::StartError::Store(crate::store::StoreError::InUse(_)) => {
                format!("{s} {}", lang.t_args("cli-users-in-console", &[]))
            }
            _ => s,
        }
    };
    match &target.config {
        Some(path) => {
            let cfg = crate::config::Config::load(path).map_err(|e| e.to_string())?;
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let store = crate::server::open_store(&cfg, &base, false)
                .await
                .map_err(said)?;
            crate::server::build_broker(&cfg, &base, store)
                .await
                .map_err(said)
        }
        None => crate::dev::broker_for_users(&target.data_dir)
            .await
            .map_err(said),
    }
}

/// How long a password given here signs in, in hours.
fn temporary_hours() -> String {
    (crate::service::users::TEMPORARY_PASSWORD_MS / 3_600_000).to_string()
}

fn role_name(lang: Lang, r: UserRole) -> String {
    lang.t(match r {
        UserRole::Clerk => "role-clerk",
        UserRole::Manager => "role-manager",
        UserRole::SchemeStaff => "role-scheme",
        UserRole::Operator => "role-operator",
    })
}

fn print_totp(lang: Lang, u: &User) {
    if u.totp_secret.is_empty() {
        return;
    }
    outln!(
        "{}",
        lang.t_args("cli-user-totp", &[("secret", &u.totp_secret)])
    );
    if let Some(url) = totp_url(&u.totp_secret, &u.login) {
        outln!("{}", lang.t_args("cli-user-totp-url", &[("url", &url)]));
    }
}

pub async fn run(target: Target, cmd: UsersCmd, lang: Lang) -> ExitCode {
    let fail = |detail: String| {
        eprintln!(
            "{}",
            lang.t_args("cli-error-detail", &[("detail", &detail)])
        );
        ExitCode::FAILURE
    };
    // Who made the change, for the audit row: this host's user.
    let by = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    let broker = match broker(&target, lang).await {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    // A command naming an account refuses one that does not exist, rather
    // than "0 sessions closed" or the store's English words.
    let named = match &cmd {
        UsersCmd::Reset { login, .. }
        | UsersCmd::Disable { login }
        | UsersCmd::Enable { login }
        | UsersCmd::Revoke { login }
        | UsersCmd::Code { login } => Some(login.clone()),
        UsersCmd::Add { .. } | UsersCmd::List => None,
    };
    if let Some(login) = named {
        match broker.users().await {
            Ok(all) if all.iter().any(|u| u.login == login) => {}
            Ok(_) => return fail(lang.t_args("cli-user-unknown", &[("login", &login)])),
            Err(e) => return fail(describe(e)),
        }
    }
    let out = match cmd {
        UsersCmd::Add {
            login,
            name,
            role,
            scope,
            console_lang,
        } => {
            let Some(role) = UserRole::parse(&role) else {
                return fail(format!(
                    "--role: {role:?} is not one of clerk, manager, scheme, operator"
                ));
            };
            let password = random_token()[..16].to_string();
            match broker
                .add_user(
                    NewUser {
                        login,
                        display_name: name,
                        role,
                        scope,
                        password: password.clone(),
                        lang: console_lang.unwrap_or_default(),
                        must_change: true,
                    },
                    &by,
                )
                .await
            {
                Ok(u) => {
                    outln!(
                        "{}",
                        lang.t_args(
                            "cli-user-added",
                            &[("login", &u.login), ("role", &role_name(lang, u.role))]
                        )
                    );
                    outln!(
                        "{}",
                        lang.t_args(
                            "cli-user-password",
                            &[("password", &password), ("hours", &temporary_hours())]
                        )
                    );
                    print_totp(lang, &u);
                    Ok(())
                }
                Err(e) => Err(describe(e)),
            }
        }
        UsersCmd::Reset { login, totp } => {
            let password = random_token()[..16].to_string();
            match broker
                .change_user(&login, Some(&password), totp, None, &by)
                .await
            {
                Ok(u) => {
                    outln!("{}", lang.t_args("cli-user-reset", &[("login", &login)]));
                    outln!(
                        "{}",
                        lang.t_args(
                            "cli-user-password",
                            &[("password", &password), ("hours", &temporary_hours())]
                        )
                    );
                    if totp {
                        print_totp(lang, &u);
                    }
                    Ok(())
                }
                Err(e) => Err(describe(e)),
            }
        }
        UsersCmd::Disable { login } => broker
            .change_user(&login, None, false, Some(true), &by)
            .await
            .map(|_| outln!("{}", lang.t_args("cli-user-disabled", &[("login", &login)])))
            .map_err(describe),
        UsersCmd::Enable { login } => broker
            .change_user(&login, None, false, Some(false), &by)
            .await
            .map(|_| outln!("{}", lang.t_args("cli-user-enabled", &[("login", &login)])))
            .map_err(describe),
        UsersCmd::Revoke { login } => broker
            .revoke_sessions(&login, &by)
            .await
            .map(|n| {
                outln!(
                    "{}",
                    lang.t_args(
                        "cli-user-revoked",
                        &[("login", &login), ("count", &n.to_string())]
                    )
                )
            })
            .map_err(describe),
        UsersCmd::List => broker
            .users()
            .await
            .map(|all| {
                for u in all {
                    outln!(
                        "{}\t{}\t{}\t{}\t{}",
                        u.login,
                        role_name(lang, u.role),
                        u.scope.join(","),
                        lang.t(if u.disabled_ms == 0 {
                            "users-enabled"
                        } else {
                            "users-disabled"
                        }),
                        u.display_name
                    );
                }
            })
            .map_err(describe),
        UsersCmd::Code { login } => match broker.users().await {
            Ok(all) => match all.into_iter().find(|u| u.login == login) {
                Some(u) if !u.totp_secret.is_empty() => {
                    let code =
                        totp_code(&u.totp_secret, broker.clock().now_ms()).unwrap_or_default();
                    outln!(
                        "{}",
                        lang.t_args("cli-user-code", &[("login", &login), ("code", &code)])
                    );
                    Ok(())
                }
                _ => Err(lang.t_args("cli-user-no-totp", &[("login", &login)])),
            },
            Err(e) => Err(describe(e)),
        },
    };
    broker.audit().flush().await;
    match out {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// A service error as a person reads it: the field and what is wrong.
fn describe(e: crate::service::ServiceError) -> String {
    match e {
        crate::service::ServiceError::Invalid(v) => v
            .iter()
            .map(|f| format!("--{}: {}", f.field.replace('_', "-"), f.description))
            .collect::<Vec<_>>()
            .join("; "),
        e => e.to_string(),
    }
}
