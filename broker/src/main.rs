//! The `passerelle` command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use passerelle_broker::cli::{self, Client, ClientCmd};
use passerelle_broker::config::{Config, LogFormat};
use passerelle_broker::console::i18n::Lang;
use passerelle_broker::{dev, server};

#[derive(Parser)]
#[command(
    name = "passerelle",
    version,
    about = "Interoperability broker between national health insurance schemes and mutuelles de santé"
)]
struct Cli {
    #[command(flatten)]
    client: Client,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a broker from a TOML configuration file.
    Serve {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Log lines as text (default) or JSON, one object per line; the
        /// config's [log] format otherwise. RUST_LOG filters them.
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Show what the broker understands from one partner payload (FHIR JSON
    /// or XML), as JSON; or the error with its path.
    Translate {
        /// fhir-r4 or xml-http.
        #[arg(long)]
        adapter: String,
        /// FHIR dialect: standard or openimis.
        #[arg(long, value_parser = ["standard", "openimis"])]
        dialect: Option<String>,
        /// The partner's adapter table (TOML): currency symbols, XML paths
        /// and number formats.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The currency of an amount that names none (FHIR Money without
        /// `currency`, XML amounts): as the partner's answers are read for a
        /// claim in that currency. Any ISO 4217 code; a symbol a payload
        /// uses instead of a code is mapped in the --config table
        /// (`currency_symbols`).
        #[arg(long, default_value = "XOF")]
        currency: String,
        file: PathBuf,
    },
    /// Run the adapter conformance checks a live partner allows against a
    /// configured partner (use its test environment).
    Conformance {
        #[arg(long, short)]
        config: PathBuf,
        /// The partner (mutuelle) id in the config.
        #[arg(long)]
        partner: String,
        /// A test member at the partner: scheme, beneficiary id, member number.
        #[arg(long)]
        scheme: String,
        #[arg(long)]
        beneficiary: String,
        #[arg(long)]
        member: String,
        /// An act code the partner knows (mapped if it has an act table).
        #[arg(long)]
        act: String,
        /// The provider (health facility) the test claims come from: one
        /// the partner knows (mapped if it has a facilities table).
        #[arg(long, default_value = "CONFORMANCE")]
        provider: String,
    },
    /// Make development certificates (CA, server, clients, CRL).
    #[command(subcommand)]
    Certs(cli::CertsCmd),
    /// Apply the database migrations of this binary (safe to run from several
    /// brokers at once), then exit.
    Migrate {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a development broker: embedded SQLite, four mutuelles (one
    /// adjudicated by passerelle's rules, and simulated gRPC, openIMIS-FHIR
    /// and XML systems), seeded members, a console. Serves until Ctrl-C.
    Dev {
        /// Folder for the database.
        #[arg(long, default_value = ".passerelle")]
        data_dir: PathBuf,
        /// Address to serve on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        /// Serve without TLS (loopback addresses only).
        #[arg(long)]
        plaintext: bool,
        /// Where to serve /metrics, /healthz and /readyz (loopback only;
        /// port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics_listen: SocketAddr,
        /// Where to serve the web console (HTTPS, loopback only; port 0
        /// picks a free port). Not with --plaintext.
        #[arg(long, default_value = "127.0.0.1:8443")]
        console_listen: SocketAddr,
        /// Log lines as text (default) or JSON, one object per line.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Tests: the broker's clock starts at this time (ms since the
        /// epoch) and runs from there.
        #[arg(long, hide = true)]
        clock_start_ms: Option<i64>,
    },
    /// Console accounts (people who sign in to the web console), on the
    /// broker's store: run on the broker's host.
    Users {
        /// The broker's configuration file.
        #[arg(long, short, conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        /// Or the folder of a `dev` broker.
        #[arg(long, default_value = ".passerelle")]
        data_dir: PathBuf,
        // Its messages' language is the global --lang (a `lang` of its own
        // here, or on `add`, made every `users` command panic in clap:
        // two arguments of one name and two types).
        #[command(subcommand)]
        cmd: cli::users::UsersCmd,
    },
    #[command(flatten)]
    Client(ClientCmd),
}

/// Log lines on stderr, filtered by RUST_LOG (default `info`): text, with
/// colours only when stderr is a terminal, or one JSON object per line.
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// `println!` that never panics: a broker must keep serving when whoever
/// started it stops reading its stdout (a closed pipe).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($t)*);
        let _ = out.flush();
    }};
}

/// The signals a broker reacts to, installed before it says it listens, so
/// that a signal sent right after never meets the default action.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
                hup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }
}

/// Serves until Ctrl-C or SIGTERM, then stops gracefully: calls in flight
/// finish, the audit log is flushed. Claims left pending resume at the next
/// start. SIGHUP reloads the TLS certificate, trusted CAs and CRLs.
async fn until_stopped(running: server::Running, mut signals: Signals) {
    #[cfg(unix)]
    loop {
        tokio::select! {
            _ = signals.int.recv() => break,
            _ = signals.term.recv() => break,
            _ = signals.hup.recv() => match running.reload_tls() {
                Ok((closed, failed)) => {
                    tracing::info!(closed, "tls reloaded (SIGHUP)");
                    for (partner, e) in failed {
                        tracing::error!(partner, error = %e, "partner files not reloaded, the previous ones stay");
                    }
                }
                Err(e) => tracing::error!(error = %e, "tls reload failed, the previous material stays"),
            },
        }
    }
    #[cfg(not(unix))]
    {
        let _ = &mut signals;
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("stopping: calls in flight finish, the audit log is flushed");
    let store = running.broker.store().clone();
    running.shutdown().await;
    store.close();
    tracing::info!("stopped");
}

/// An error of the broker's own commands, on stderr: "error: " in the
/// command line's language, then the broker's words.
fn say_error(lang: Lang, detail: impl std::fmt::Display) {
    eprintln!(
        "{}",
        lang.t_args("cli-error-detail", &[("detail", &detail.to_string())])
    );
}

#[tokio::main]
async fn main() -> ExitCode {
    // The language first, so that a refused command line is said in it.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let lang = cli::usage::early_lang(&args);
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => return cli::usage::exit(e, lang),
    };
    // What the broker's own commands print around its words (which stay
    // English, as its logs), in the command line's language.
    let lang = lang.catalogue();
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            say_error(
                lang,
                lang.t_args("cli-signals", &[("detail", &e.to_string())]),
            );
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Client(cmd) => {
            // Client commands print tables; logs stay quiet unless asked for.
            if std::env::var_os("RUST_LOG").is_some() {
                init_logs(LogFormat::Text);
            }
            cli::commands::run(cli.client, cmd).await
        }
        Command::Serve { config, log_format } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    say_error(lang, e);
                    return ExitCode::from(2);
                }
            };
            init_logs(log_format.unwrap_or(cfg.log.format));
            let base = config.parent().map(PathBuf::from).unwrap_or_default();
            match server::start(&cfg, &base).await {
                Ok(running) => {
                    if cfg.plaintext {
                        tracing::warn!("{}", dev::plaintext_warning(Lang::En));
                    }
                    let addr = running.addr.to_string();
                    say!("{}", lang.t_args("serve-listening", &[("addr", &addr)]));
                    if let Some(a) = running.ops_addr {
                        // With its scheme: off loopback it is HTTPS, and a
                        // scrape configured as http fails.
                        let scheme = if running.ops_tls { "https" } else { "http" };
                        say!(
                            "{}",
                            lang.t_args("serve-metrics", &[("addr", &format!("{scheme}://{a}"))])
                        );
                    }
                    // Where people sign in: a port 0 is known only here.
                    if let Some(a) = running.console_addr {
                        say!(
                            "{}",
                            lang.t_args("serve-console", &[("addr", &a.to_string())])
                        );
                    }
                    until_stopped(running, signals).await;
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    say_error(
                        lang,
                        format!("{}: {}", config.display(), cli::start_error(lang, &e)),
                    );
                    ExitCode::FAILURE
                }
            }
        }
        Command::Certs(cmd) => cli::commands::certs(cmd, &cli.client.certs),
        Command::Conformance {
            config,
            partner,
            scheme,
            beneficiary,
            member,
            act,
            provider,
        } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    say_error(lang, e);
                    return ExitCode::from(2);
                }
            };
            let base = config.parent().map(PathBuf::from).unwrap_or_default();
            let m = cli::conformance::Member {
                scheme,
                beneficiary,
                number: member,
                act,
                provider,
            };
            match cli::conformance::run(&cfg, &base, &partner, &m).await {
                Ok(checks) => {
                    let mut failed = false;
                    let (pass, fail) = (lang.t("conformance-pass"), lang.t("conformance-fail"));
                    // The names in a column: two spaces after the longer word.
                    let w = pass.chars().count().max(fail.chars().count()) + 2;
                    let names: Vec<String> = checks
                        .iter()
                        .map(|c| lang.t(&format!("conformance-check-{}", c.name.replace(' ', "-"))))
                        .collect();
                    let n = names.iter().map(|n| n.chars().count()).max().unwrap_or(0) + 1;
                    for (c, name) in checks.iter().zip(&names) {
                        match &c.outcome {
                            Ok(m) => say!("{pass:<w$}{name:<n$} {}", m.words(lang)),
                            Err(e) => {
                                failed = true;
                                say!("{fail:<w$}{name:<n$} {}", e.words(lang))
                            }
                        }
                    }
                    say!("{}", lang.t("conformance-elsewhere"));
                    if failed {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    say_error(lang, e);
                    ExitCode::FAILURE
                }
            }
        }
        Command::Translate {
            adapter,
            dialect,
            config,
            currency,
            file,
        } => {
            match cli::translate::translate(
                &adapter,
                dialect.as_deref(),
                config.as_deref(),
                &file,
                &currency,
            ) {
                Ok(v) => {
                    say!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    say!("{}", serde_json::json!({ "error": e }));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Migrate { config } => {
            init_logs(LogFormat::Text);
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    say_error(lang, e);
                    return ExitCode::from(2);
                }
            };
            let base = config.parent().map(PathBuf::from).unwrap_or_default();
            // A SQLite file not there yet is created: said, since a path
            // mistyped after a restore would give an empty broker.
            let created = cfg
                .store
                .postgres
                .is_none()
                .then(|| cfg.sqlite_path(&base))
                .filter(|p| !p.exists());
            match server::open_store(&cfg, &base, true).await {
                Ok(store) => {
                    if let Some(p) = created {
                        say!(
                            "{}",
                            lang.t_args("migrate-created", &[("path", &p.display().to_string())])
                        );
                    }
                    let version = store.schema_status().await.map(|(v, _)| v).unwrap_or(0);
                    let version = version.to_string();
                    say!("{}", lang.t_args("migrate-done", &[("version", &version)]));
                    // Advice, not a refusal: a language's collation is
                    // correct, only slower.
                    match store.slow_collation().await {
                        Ok(None) => {}
                        Ok(Some(c)) => {
                            let said = lang.t_args("store-slow-collation", &[("collation", &c)]);
                            eprintln!(
                                "{}",
                                lang.t_args("cli-warning-detail", &[("detail", &said)])
                            );
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "the database's collation could not be read")
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    say_error(
                        lang,
                        format!("{}: {}", config.display(), cli::start_error(lang, &e)),
                    );
                    ExitCode::FAILURE
                }
            }
        }
        Command::Users {
            config,
            data_dir,
            cmd,
        } => cli::users::run(cli::users::Target { config, data_dir }, cmd, lang).await,
        Command::Dev {
            data_dir,
            listen,
            plaintext,
            metrics_listen,
            console_listen,
            log_format,
            clock_start_ms,
        } => {
            init_logs(log_format);
            match dev::start(
                &data_dir,
                listen,
                plaintext,
                Some(metrics_listen),
                Some(console_listen),
                clock_start_ms,
            )
            .await
            {
                Ok(running) => {
                    if plaintext {
                        eprintln!("{}", dev::plaintext_warning(lang));
                    }
                    let secret = dev::demo_operator_secret(&running).await;
                    let served = dev::Served::of(&running);
                    let banner = dev::banner(lang, served, &data_dir, plaintext, secret.as_deref());
                    say!("{banner}");
                    until_stopped(running, signals).await;
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    say_error(lang, e);
                    ExitCode::FAILURE
                }
            }
        }
    }
}
