//! Test hooks, compiled only with the `failpoints` feature (the test builds
//! turn it on; a release build has none of this). Set from the
//! PASSERELLE_FAILPOINT variable, read once.

use std::sync::OnceLock;

/// Which hook is armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failpoint {
    /// Stop for ever after a partner's answer, before storing it (to test a
    /// kill -9 at the worst moment). Prints "failpoint after_partner_answer
    /// reached" on stderr.
    AfterPartnerAnswer,
}

fn armed() -> Option<Failpoint> {
    static ARMED: OnceLock<Option<Failpoint>> = OnceLock::new();
    *ARMED.get_or_init(
        || match std::env::var("PASSERELLE_FAILPOINT").ok()?.as_str() {
            "after_partner_answer" => Some(Failpoint::AfterPartnerAnswer),
            _ => None,
        },
    )
}

/// Between a partner's answer and its commit.
pub(super) async fn after_partner_answer() {
    if armed() == Some(Failpoint::AfterPartnerAnswer) {
        eprintln!("failpoint after_partner_answer reached");
        std::future::pending::<()>().await;
    }
}
