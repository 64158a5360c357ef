//! W3C Trace Context (`traceparent`, https://www.w3.org/TR/trace-context/):
//! the trace a call belongs to, so that one claim can be followed across
//! the scheme's system, the broker and the mutuelle's.
//!
//! The broker takes a caller's `traceparent` (or starts a trace) and runs
//! the call inside [`scope`], under a span of its own (`broker/src/otel.rs`);
//! each partner call runs under a client span, which it carries ([`outgoing`]):
//! the grpc adapter as metadata, the HTTP adapters as a header. The audit rows
//! and the claim's log lines name the trace id.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

tokio::task_local! {
    static CURRENT: TraceParent;
}

/// One `traceparent`: version 00, a trace id, the parent span id, flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` header value; `None` when it is not a valid
    /// version-00 value (all-zero ids are invalid). A future version is
    /// read by its first four fields, as the specification asks.
    pub fn parse(v: &str) -> Option<TraceParent> {
        let v = v.trim();
        let mut parts = v.split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || !is_lower_hex(version) {
            return None;
        }
        if version == "00" && (parts.next().is_some() || v.len() != 55) {
            return None;
        }
        let trace_id: [u8; 16] = hex_array(trace)?;
        let span_id: [u8; 8] = hex_array(span)?;
        let [flags]: [u8; 1] = hex_array(flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            flags,
        })
    }

    /// A new trace (sampled flag off: the broker exports no spans itself).
    pub fn root() -> TraceParent {
        let a = random_u128();
        TraceParent {
            trace_id: a.to_be_bytes(),
            span_id: random_span(),
            flags: 0,
        }
    }

    /// The same trace, a new span id: what an outgoing call carries. Of
    /// the flags only "sampled" is passed on (version 00 defines no other).
    pub fn child(&self) -> TraceParent {
        TraceParent {
            span_id: random_span(),
            flags: self.flags & 0x01,
            ..*self
        }
    }

    /// A trace parent from its parts (an exported span's ids).
    pub fn from_parts(trace_id: [u8; 16], span_id: [u8; 8], sampled: bool) -> TraceParent {
        TraceParent {
            trace_id,
            span_id,
            flags: u8::from(sampled),
        }
    }

    /// The trace id's bytes.
    pub fn trace_bytes(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The span id's bytes.
    pub fn span_bytes(&self) -> [u8; 8] {
        self.span_id
    }

    /// The "sampled" flag.
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 == 1
    }

    /// The trace id, 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The header value.
    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.span_id),
            self.flags
        )
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !is_lower_hex(s) {
        return None;
    }
    hex::decode(s).ok()?.try_into().ok()
}

/// 64 bits, unique to this process and call: SplitMix64 over a counter
/// from a per-process random seed (std's hash keys and the time). Its mix
/// is a bijection, so no two calls of one process get the same value; the
/// seed keeps processes apart. Trace ids need uniqueness, not secrecy, and
/// this runs on every call (two multiplications, no allocation).
fn next_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static N: AtomicU64 = AtomicU64::new(1);
    let seed = *SEED.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write(format!("{:?}", std::time::Instant::now()).as_bytes());
        h.finish()
    });
    let mut z = seed.wrapping_add(N.fetch_add(1, Ordering::Relaxed).wrapping_mul(GOLDEN));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn random_u128() -> u128 {
    ((u128::from(next_u64()) << 64) | u128::from(next_u64())).max(1)
}

fn random_span() -> [u8; 8] {
    next_u64().max(1).to_be_bytes()
}

/// Runs `f` as part of trace `t`.
pub async fn scope<F: Future>(t: TraceParent, f: F) -> F::Output {
    CURRENT.scope(t, f).await
}

/// The trace of the running call, if any.
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(|t| *t).ok()
}

/// The `traceparent` an outgoing call carries, if it runs in a trace: the
/// running span (the broker opens a client span around each partner call,
/// `service/partner.rs`).
pub fn outgoing() -> Option<String> {
    current().map(|t| t.header())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_specifications_examples_and_refuses_the_rest() {
        let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceParent::parse(v).unwrap();
        assert_eq!(t.header(), v);
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let c = t.child();
        assert_eq!(c.trace_id(), t.trace_id());
        assert_ne!(c.header(), t.header(), "a new span id");
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        // A later version: its first four fields.
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more")
                .is_some()
        );
        let (a, b) = (TraceParent::root(), TraceParent::root());
        assert_ne!(a.trace_id(), b.trace_id());
        let spans: std::collections::HashSet<String> =
            (0..10_000).map(|_| a.child().header()).collect();
        assert_eq!(spans.len(), 10_000, "span ids do not repeat");
        assert!(TraceParent::parse(&a.header()).is_some());
    }

    #[tokio::test]
    async fn a_scope_carries_the_trace_to_outgoing_calls() {
        assert_eq!(outgoing(), None);
        let t = TraceParent::root();
        let h = scope(t, async { outgoing() }).await.unwrap();
        assert_eq!(h, t.header());
    }
}
