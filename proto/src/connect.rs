//! The Connect protocol's error codes (<https://connectrpc.com/docs/protocol/#error-codes>):
//! one table, read by the broker's JSON door and by the OpenAPI description.

/// Every error code: its gRPC number, Connect's name for it (`canceled`
/// has one L there) and the HTTP status a unary error answers with.
pub const CODES: [(i32, &str, u16); 16] = [
    (1, "canceled", 499),
    (2, "unknown", 500),
    (3, "invalid_argument", 400),
    (4, "deadline_exceeded", 504),
    (5, "not_found", 404),
    (6, "already_exists", 409),
    (7, "permission_denied", 403),
    (8, "resource_exhausted", 429),
    (9, "failed_precondition", 400),
    (10, "aborted", 409),
    (11, "out_of_range", 400),
    (12, "unimplemented", 501),
    (13, "internal", 500),
    (14, "unavailable", 503),
    (15, "data_loss", 500),
    (16, "unauthenticated", 401),
];

/// Connect's name and HTTP status of a gRPC code (an unknown number is
/// `unknown`, 500).
pub fn code(grpc: i32) -> (&'static str, u16) {
    CODES
        .iter()
        .find(|(n, _, _)| *n == grpc)
        .map_or(("unknown", 500), |(_, name, http)| (name, *http))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_follows_grpc_numbering() {
        for (i, (n, _, _)) in CODES.iter().enumerate() {
            assert_eq!(*n, i as i32 + 1);
        }
        assert_eq!(code(1), ("canceled", 499));
        assert_eq!(code(3), ("invalid_argument", 400));
        assert_eq!(code(16), ("unauthenticated", 401));
        assert_eq!(code(99), ("unknown", 500));
    }
}
