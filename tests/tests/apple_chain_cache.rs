//! A chain verified once is remembered with its trust roots; what the cache must never do is
//! let through what a full verification refuses: a chain whose certificates are not valid at
//! the payload's `signedDate`, another root, a chain missing Apple's marker OIDs, or a bad
//! JWS signature under a known chain.

use serde_json::Value;
use tollgate::providers::apple::wire::{verify_jws, JwsError, TrustRoots};
use tollgate_tests::apple::{
    certificate_validity as validity, fixture_path, sign_with, transaction, with_payload,
};

fn roots(name: &str) -> TrustRoots {
    TrustRoots::from_pem(&std::fs::read_to_string(fixture_path(name)).unwrap()).unwrap()
}

/// A transaction signed at `signed` (unix seconds).
fn signed_at(id: &str, signed: i64) -> Value {
    transaction(id, id, "com.example.vip", signed, None, signed)
}

fn is_chain_error(r: Result<Value, JwsError>) -> bool {
    matches!(r, Err(JwsError::Chain(_)))
}

#[test]
fn a_known_chain_is_still_checked_at_each_signed_date() {
    let roots = roots("root.pem");
    let chain = ["leaf_expired", "intermediate", "root"];
    let (from, until) = validity("leaf_expired");
    let inside = sign_with("leaf_expired", &chain, &signed_at("1", from + 60));
    assert!(verify_jws(&inside, &roots).is_ok(), "valid when signed");
    // The same chain, now known, at instants outside the leaf's life.
    for (id, at) in [
        ("2", until + 1),
        ("3", from - 1),
        ("4", until + 86_400 * 400),
    ] {
        let jws = sign_with("leaf_expired", &chain, &signed_at(id, at));
        assert!(is_chain_error(verify_jws(&jws, &roots)), "signed at {at}");
    }
    // Inside again: still accepted, and the window's edges are inclusive as in full.
    for (id, at) in [("5", from), ("6", until)] {
        let jws = sign_with("leaf_expired", &chain, &signed_at(id, at));
        assert!(verify_jws(&jws, &roots).is_ok(), "signed at {at}");
    }
}

#[test]
fn a_chain_refused_in_full_is_refused_the_second_time_too() {
    let roots = roots("root.pem");
    let (from, _) = validity("leaf");
    let at = from + 60;
    let good = sign_with(
        "leaf",
        &["leaf", "intermediate", "root"],
        &signed_at("10", at),
    );
    assert!(verify_jws(&good, &roots).is_ok());
    for _ in 0..2 {
        for (key, chain) in [
            ("leaf_nooid", ["leaf_nooid", "intermediate", "root"]),
            (
                "leaf_under_nooid",
                ["leaf_under_nooid", "intermediate_nooid", "root"],
            ),
            ("leaf", ["leaf", "intermediate_nooid", "root"]),
        ] {
            let jws = sign_with(key, &chain, &signed_at("11", at));
            assert!(is_chain_error(verify_jws(&jws, &roots)), "{chain:?}");
        }
    }
}

#[test]
fn other_roots_do_not_share_what_one_verified() {
    let (from, _) = validity("leaf");
    let good = sign_with(
        "leaf",
        &["leaf", "intermediate", "root"],
        &signed_at("20", from + 60),
    );
    let trusted = roots("root.pem");
    assert!(verify_jws(&good, &trusted).is_ok());
    assert!(
        verify_jws(&good, &trusted.clone()).is_ok(),
        "a clone: the same roots"
    );
    let other = roots("other_root.pem");
    assert!(is_chain_error(verify_jws(&good, &other)));
}

#[test]
fn a_known_chain_does_not_vouch_for_the_signature() {
    let roots = roots("root.pem");
    let (from, _) = validity("leaf");
    let good = sign_with(
        "leaf",
        &["leaf", "intermediate", "root"],
        &signed_at("30", from + 60),
    );
    assert!(verify_jws(&good, &roots).is_ok());
    let tampered = with_payload(&good, &signed_at("31", from + 60));
    assert_eq!(verify_jws(&tampered, &roots), Err(JwsError::Signature));
    // Signed by another key (the expired leaf's) under the known chain's certificates.
    let wrong_key = sign_with(
        "leaf_expired",
        &["leaf", "intermediate", "root"],
        &signed_at("32", from + 60),
    );
    assert_eq!(verify_jws(&wrong_key, &roots), Err(JwsError::Signature));
}
