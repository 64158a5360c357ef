//! A command line clap refuses, said in the reader's language: clap words
//! its own errors in English, before any command runs. Its error carries
//! what went wrong as values (the argument, the value, the valid ones, a
//! suggestion, the usage line); in French they are put into sentences of
//! the one catalogue (`broker/locales/*.ftl`, keys `cli-usage-*`). English
//! keeps clap's own rendering. `--help` and `--version` are printed as clap
//! prints them (the commands' descriptions are English, as in docs/cli.md).

use std::io::Write as _;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};

use super::output::Lang;

/// The language of a command line not parsed yet: its `--lang` (`--lang
/// fr`, `--lang=fr`), else the locale as [`Lang::detect`] reads it. It
/// becomes the process's language ([`Lang::of_process`]), so that the
/// value parsers (a typed date) answer in it too.
pub fn early_lang(args: &[std::ffi::OsString]) -> Lang {
    Lang::detect(lang_flag(args))
}

/// The `--lang` of a command line not parsed yet, the last one given;
/// nothing after `--` (a value, not an option).
fn lang_flag(args: &[std::ffi::OsString]) -> Option<Lang> {
    let mut flag = None;
    let mut it = args.iter().filter_map(|a| a.to_str());
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        let value = match a.strip_prefix("--lang") {
            Some("") => it.next(),
            Some(v) => v.strip_prefix('='),
            None => None,
        };
        match value {
            Some("fr") => flag = Some(Lang::Fr),
            Some("en") => flag = Some(Lang::En),
            _ => {}
        }
    }
    flag
}

/// Prints a refused command line (or the help or version asked for) and
/// gives the exit status clap would have: 2 for a refusal, 0 for help.
pub fn exit(e: clap::Error, lang: Lang) -> ExitCode {
    let code = u8::try_from(e.exit_code()).unwrap_or(2);
    match (lang, refusal(&e, lang)) {
        (Lang::Fr, Some(text)) => {
            // As clap prints: a closed stderr is no reason to panic.
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
            ExitCode::from(code)
        }
        (Lang::Fr, None) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // A command with its subcommand missing: said, then clap's help.
            let cat = lang.catalogue();
            let _ = writeln!(
                std::io::stderr().lock(),
                "{}{} {}\n",
                cat.t_args("cli-usage-error", &[]),
                lang.colon(),
                cat.t_args("cli-usage-help-follows", &[])
            );
            let _ = e.print();
            ExitCode::from(code)
        }
        _ => {
            // clap's own words: help, version, and English.
            let _ = e.print();
            ExitCode::from(code)
        }
    }
}

/// The refusal in `lang`'s words, `None` for help and version (and for an
/// error whose values clap did not give, left to clap's words).
pub fn refusal(e: &clap::Error, lang: Lang) -> Option<String> {
    let cat = lang.catalogue();
    let text = |v: Option<&ContextValue>| match v {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) if !v.is_empty() => Some(v.join(", ")),
        Some(ContextValue::StyledStr(s)) => Some(s.to_string()),
        _ => None,
    };
    let number = |k: ContextKind| match e.get(k) {
        Some(ContextValue::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let arg = text(e.get(ContextKind::InvalidArg));
    let value = text(e.get(ContextKind::InvalidValue));
    let key_args = |key: &str, args: &[(&str, String)]| {
        let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
        cat.t_args(key, &args)
    };
    let mut said = match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => return None,
        ErrorKind::InvalidValue => {
            let (arg, value) = (arg?, value?);
            let mut s = if value.is_empty() {
                key_args("cli-usage-value-missing", &[("arg", arg)])
            } else {
                key_args("cli-usage-value-invalid", &[("arg", arg), ("value", value)])
            };
            if let Some(valid) = text(e.get(ContextKind::ValidValue)) {
                s.push_str(&key_args("cli-usage-possible-values", &[("values", valid)]));
            }
            s
        }
        ErrorKind::ValueValidation => {
            let (arg, value) = (arg?, value?);
            // The option, then what is wrong with its value, which names it.
            match std::error::Error::source(e) {
                Some(source) => format!(
                    "{arg}{} {}",
                    lang.colon(),
                    parser_words(source, &value, lang)
                ),
                None => key_args("cli-usage-value-invalid", &[("arg", arg), ("value", value)]),
            }
        }
        ErrorKind::UnknownArgument => {
            let arg = arg?;
            if arg.starts_with('-') {
                key_args("cli-usage-unknown-argument", &[("arg", arg)])
            } else {
                key_args("cli-usage-unexpected-positional", &[("arg", arg)])
            }
        }
        ErrorKind::InvalidSubcommand => key_args(
            "cli-usage-unknown-command",
            &[("command", text(e.get(ContextKind::InvalidSubcommand))?)],
        ),
        ErrorKind::MissingRequiredArgument => {
            let Some(ContextValue::Strings(missing)) = e.get(ContextKind::InvalidArg) else {
                return None;
            };
            key_args(
                "cli-usage-missing-arguments",
                &[
                    ("count", missing.len().to_string()),
                    ("args", missing.join(", ")),
                ],
            )
        }
        ErrorKind::MissingSubcommand => {
            let mut s = key_args(
                "cli-usage-missing-command",
                &[("command", text(e.get(ContextKind::InvalidSubcommand))?)],
            );
            if let Some(valid) = text(e.get(ContextKind::ValidSubcommand)) {
                s.push_str(&key_args("cli-usage-commands", &[("values", valid)]));
            }
            s
        }
        ErrorKind::ArgumentConflict => match (arg, text(e.get(ContextKind::PriorArg))) {
            (Some(arg), Some(prior)) if arg != prior => {
                key_args("cli-usage-conflict", &[("arg", arg), ("prior", prior)])
            }
            (Some(arg), Some(_)) => key_args("cli-usage-repeated", &[("arg", arg)]),
            // An argument that goes with no other (clap names none).
            (Some(arg), None) => key_args("cli-usage-exclusive", &[("arg", arg)]),
            (None, _) => return None,
        },
        ErrorKind::NoEquals => key_args("cli-usage-no-equals", &[("arg", arg?)]),
        ErrorKind::TooManyValues => key_args(
            "cli-usage-unexpected-value",
            &[("arg", arg?), ("value", value?)],
        ),
        ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => {
            let expected = number(ContextKind::MinValues)
                .or_else(|| number(ContextKind::ExpectedNumValues))?;
            key_args(
                "cli-usage-value-count",
                &[
                    ("arg", arg?),
                    ("expected", expected),
                    ("given", number(ContextKind::ActualNumValues)?),
                ],
            )
        }
        ErrorKind::InvalidUtf8 => cat.t_args("cli-usage-not-utf8", &[]),
        _ => return None,
    };
    // The suggestion clap found (a near option, command or value): its
    // likeliest, which it lists last.
    for k in [
        ContextKind::SuggestedArg,
        ContextKind::SuggestedSubcommand,
        ContextKind::SuggestedValue,
    ] {
        let near = match e.get(k) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            Some(ContextValue::Strings(v)) => v.last().cloned(),
            _ => None,
        };
        if let Some(near) = near {
            said.push_str(&key_args("cli-usage-did-you-mean", &[("near", near)]));
        }
    }
    let mut out = format!(
        "{}{} {said}\n",
        cat.t_args("cli-usage-error", &[]),
        lang.colon()
    );
    if let Some(usage) = text(e.get(ContextKind::Usage)) {
        // clap's usage line, its English title replaced.
        let line = usage.trim().trim_start_matches("Usage:").trim();
        out.push_str(&format!(
            "\n{}{} {line}\n",
            cat.t_args("cli-usage-usage", &[]),
            lang.colon()
        ));
    }
    out.push_str(&format!("\n{}\n", cat.t_args("cli-usage-more", &[])));
    Some(out)
}

/// What a value parser said of `value`, in `lang`: ours (a typed date)
/// already speak it; the standard library's number and address errors are
/// said from their kind, and clap's range check from its words ("20000 is
/// not in 1..=10000"); anything else as it was said.
fn parser_words(source: &(dyn std::error::Error + 'static), value: &str, lang: Lang) -> String {
    use std::num::IntErrorKind;
    let cat = lang.catalogue();
    let said = |key: &str| cat.t_args(key, &[("value", value)]);
    if let Some(e) = source.downcast_ref::<std::num::ParseIntError>() {
        return match e.kind() {
            IntErrorKind::Empty => said("cli-usage-number-missing"),
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => {
                said("cli-usage-number-too-large")
            }
            _ => said("cli-usage-not-a-number"),
        };
    }
    if source.is::<std::net::AddrParseError>() {
        return said("cli-usage-not-an-address");
    }
    let text = source.to_string();
    if let Some((_, range)) = text.split_once(" is not in ")
        && let Some((low, high)) = range.split_once("..=")
    {
        return cat.t_args(
            "cli-usage-out-of-range",
            &[("value", value), ("low", low), ("high", high)],
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser, Subcommand};

    use super::*;

    #[derive(Parser, Debug)]
    #[command(name = "passerelle")]
    struct Cli {
        #[arg(long, global = true, value_enum)]
        lang: Option<Lang>,
        #[command(subcommand)]
        command: Cmd,
    }

    #[derive(Subcommand, Debug)]
    enum Cmd {
        Claim {
            #[command(subcommand)]
            command: ClaimCmd,
        },
    }

    #[derive(Subcommand, Debug)]
    enum ClaimCmd {
        Get {
            #[arg(long)]
            scheme: String,
            claim_id: String,
            #[arg(long, value_parser = crate::cli::typed_date)]
            date: Option<String>,
            #[arg(long, value_parser = ["standard", "openimis"])]
            dialect: Option<String>,
            #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
            size: Option<u32>,
        },
    }

    fn fr(args: &[&str]) -> String {
        let e = Cli::try_parse_from(args).expect_err("refused");
        refusal(&e, Lang::Fr).expect("said in French")
    }

    /// `claim get` refused with one option more.
    fn fr_with(option: &str, value: &str) -> String {
        fr(&[
            "passerelle",
            "claim",
            "get",
            "--scheme",
            "X",
            "C",
            option,
            value,
        ])
    }

    #[test]
    fn a_refused_command_line_is_said_in_french() {
        let s = fr(&["passerelle", "claim", "get", "C-1"]);
        assert!(
            s.starts_with("erreur : il manque --scheme <SCHEME>\n"),
            "{s}"
        );
        assert!(
            s.contains("\nUtilisation : passerelle claim get --scheme <SCHEME>"),
            "{s}"
        );
        assert!(
            s.ends_with("Pour en savoir plus, ajoutez --help à la commande (aide en anglais).\n"),
            "{s}"
        );
        assert!(!s.contains("Usage") && !s.contains("required"), "{s}");

        let s = fr(&["passerelle", "claim", "get", "--schem", "CNSS", "C-1"]);
        assert!(
            s.contains("option inconnue « --schem » ; vouliez-vous dire « --scheme » ?"),
            "{s}"
        );
        let s = fr(&["passerelle", "claim", "get", "--scheme", "X", "C-1", "C-2"]);
        assert!(s.contains("valeur en trop « C-2 »"), "{s}");
        let s = fr_with("--size", "abc");
        assert!(
            s.starts_with("erreur : --size <SIZE> : « abc » n'est pas un nombre entier\n"),
            "{s}"
        );
        let s = fr_with("--size", "20000");
        assert!(
            s.starts_with("erreur : --size <SIZE> : « 20000 » doit être entre 1 et 10000\n"),
            "{s}"
        );
        let s = fr_with("--size", "99999999999999999999");
        assert!(s.contains("« 99999999999999999999 » est trop grand"), "{s}");
        let s = fr(&["passerelle", "claim", "gett"]);
        assert!(
            s.contains("commande inconnue « gett » ; vouliez-vous dire « get » ?"),
            "{s}"
        );
        let s = fr_with("--dialect", "v2");
        assert!(
            s.contains(
                "valeur « v2 » refusée pour « --dialect <DIALECT> » ; valeurs possibles : standard, openimis"
            ),
            "{s}"
        );
        // A missing subcommand is clap's help (said first by `exit`).
        let e = Cli::try_parse_from(["passerelle", "claim"]).expect_err("refused");
        assert_eq!(
            e.kind(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        assert!(refusal(&e, Lang::Fr).is_none());
    }

    #[test]
    fn a_value_parsers_words_follow_the_french_sentence() {
        // The typed date's own words are the process's language (set by
        // early_lang, not here: tests share the process); tests/cli.rs
        // checks them in French end to end.
        let s = fr_with("--date", "31/02/2026");
        assert!(s.starts_with("erreur : --date <DATE> : "), "{s}");
        assert!(s.contains("31/02/2026"), "the parser's words follow: {s}");
    }

    #[test]
    fn help_and_version_are_claps() {
        let help = Cli::try_parse_from(["passerelle", "--help"]).expect_err("help");
        assert_eq!(help.kind(), ErrorKind::DisplayHelp);
        assert!(refusal(&help, Lang::Fr).is_none());
        Cli::command().debug_assert();
    }

    #[test]
    fn the_language_is_read_before_the_command_line_is_parsed() {
        let flag =
            |v: &[&str]| lang_flag(&v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>());
        assert_eq!(
            flag(&["passerelle", "--lang", "fr", "claim"]),
            Some(Lang::Fr)
        );
        assert_eq!(flag(&["passerelle", "claim", "--lang=en"]), Some(Lang::En));
        assert_eq!(
            flag(&["passerelle", "--lang", "fr", "--lang", "en"]),
            Some(Lang::En)
        );
        assert_eq!(flag(&["passerelle", "claim", "--", "--lang", "fr"]), None);
        assert_eq!(flag(&["passerelle", "--lang", "de"]), None);
    }
}
