//! The gRPC edge: the only place in the broker that knows prost types.
//! Requests are converted to domain values (collecting every field
//! violation), handed to [`crate::service::Broker`], and the answers converted
//! back. Every call leaves an audit row: handlers have one shape, see
//! [`call`].

#[macro_use]
pub(crate) mod call;

pub mod admin;
pub mod auth;
pub mod connect;
pub mod edge;
pub mod parse;
pub mod product;
pub mod remittance;
pub mod roster;
pub mod scheme;
pub mod settlement;
pub mod status;

use std::time::Duration;

/// How long a call may run: the server's `request_timeout_ms`, or the
/// client's own deadline (the `grpc-timeout` header) when shorter.
pub(crate) fn call_budget<T>(req: &tonic::Request<T>, server: Duration) -> Duration {
    grpc_budget(
        req.metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok()),
        server,
    )
}

/// [`call_budget`] from a `grpc-timeout` header's value.
pub(crate) fn grpc_budget(grpc_timeout: Option<&str>, server: Duration) -> Duration {
    within(grpc_timeout.and_then(parse_grpc_timeout), server)
}

/// The shorter of the client's deadline, if it set one, and the server's.
pub(crate) fn within(client: Option<Duration>, server: Duration) -> Duration {
    client.map_or(server, |c| c.min(server))
}

/// The `grpc-timeout` header: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A long poll's wait, shortened to end before the call's budget with a
/// margin (a tenth of it, at least 500 ms) for the answer to leave: at the
/// documented maximum wait (30 s, as long as the default request timeout)
/// the poll answers after 27 s instead of racing the timeout and ending
/// CANCELLED.
pub(crate) fn wait_within(wait: Duration, budget: Duration) -> Duration {
    let margin = (budget / 10).max(Duration::from_millis(500));
    wait.min(budget.saturating_sub(margin))
}

#[cfg(test)]
mod tests {
    use super::call::caller_key;
    use super::*;

    #[test]
    fn a_long_poll_ends_before_the_call_deadline() {
        let s = Duration::from_secs;
        assert_eq!(wait_within(s(30), s(30)), s(27));
        assert_eq!(wait_within(s(5), s(30)), s(5));
        assert_eq!(
            wait_within(s(30), Duration::from_millis(400)),
            Duration::ZERO
        );
        assert_eq!(
            parse_grpc_timeout("2500m"),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parse_grpc_timeout("3S"), Some(s(3)));
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(caller_key("scheme:CNSS@10.0.0.5:51234"), "scheme:CNSS");
    }

    /// The edge converts and maps errors; every call reaches the store
    /// through the service (`crate::service`), which owns the clock too.
    #[test]
    fn the_edge_never_reads_the_store_or_the_clock() {
        let files = crate::source_guard::production_files("api");
        assert!(files.len() >= 11, "{} files read", files.len());
        let store = [".", "store()"].concat();
        let clock = ["now", "_utc()"].concat();
        let system_ms = ["now", "_ms()"].concat();
        for (path, src) in files {
            let name = path.display();
            assert!(!src.contains(&store), "{name} calls the store");
            assert!(!src.contains(&clock), "{name} reads the clock");
            assert!(
                src.match_indices(&system_ms)
                    .all(|(i, _)| src[..i].ends_with('.')),
                "{name} reads the system clock, not the broker's"
            );
        }
    }
}
