//! A short fuzzing campaign against every network parser, part of the normal test command:
//! 2,000 inputs each, 500 where re-signing is an RSA signature (the long campaign is
//! `scripts/fuzz`). The seed is fixed so the run is the same every time;
//! `TOLLGATE_FUZZ_SEED` picks another. Also shows that the oracle catches what it is meant
//! to catch: a panic, a verifier that ignores its signature, and an altered message accepted
//! as something else.

use tollgate_tests::fuzz::{self, targets, Input, Problem, Target, Verdict};

const RUNS: u64 = 2_000;

/// Targets whose re-signed mutants take an RSA private-key operation each, which the
/// unoptimised test build makes slow: fewer runs keep the whole file to seconds.
const RSA_SIGNED: &[&str] = &["wechat", "alipay", "google_push", "jwt"];

fn seed() -> u64 {
    std::env::var("TOLLGATE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_270_115)
}

fn campaign(name: &str) {
    let target = targets::build(name).expect("known target");
    let seed = seed();
    let runs = if RSA_SIGNED.contains(&name) {
        RUNS / 4
    } else {
        RUNS
    };
    let report = fuzz::run(target.as_ref(), seed, 0, runs).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{name}: {} runs (seed {seed}), {} random, {} re-signed, {} accepted, {} findings, {:.0}/s",
        report.runs,
        report.random,
        report.resigned,
        report.accepted,
        report.findings,
        report.per_second()
    );
    let details: String = report
        .first
        .iter()
        .map(|f| format!("{f}{}", f.input.describe(target.fields())))
        .collect();
    assert_eq!(report.findings, 0, "{details}");
    assert!(report.random > 0 && report.runs == runs);
}

macro_rules! campaigns {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { campaign(stringify!($name)); } )*

        #[test]
        fn every_target_is_run_here() {
            let here = [$(stringify!($name)),*];
            assert_eq!(&here[..], targets::NAMES);
        }
    };
}

campaigns!(
    sandbox,
    wechat,
    alipay,
    huya_post,
    huya_get,
    apple_transaction,
    apple_notification,
    google_push,
    google_rtdn,
    stream_token,
    stream_verify,
    jwt,
    money,
    catalog,
);

/// A deliberately broken target, to show that each oracle fires.
struct Broken {
    flaw: Flaw,
    seeds: Vec<Input>,
}

#[derive(Clone, Copy)]
enum Flaw {
    /// Panics on a quote.
    Panics,
    /// Accepts anything that starts with `{`: the signature is never looked at.
    IgnoresSignature,
    /// Accepts the genuine message and reports whatever amount the message says.
    TrustsAlteredAmount,
}

impl Target for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn fields(&self) -> &'static [&'static str] {
        &["signature", "body"]
    }
    fn seeds(&self) -> &[Input] {
        &self.seeds
    }
    fn check(&self, input: &Input) -> Verdict {
        let body = input.field(1);
        match self.flaw {
            Flaw::Panics => {
                assert!(!body.contains(&b'"'), "quote in body");
                Verdict::Valid
            }
            Flaw::IgnoresSignature if body.first() == Some(&b'{') => {
                Verdict::Accepted("paid".into())
            }
            Flaw::IgnoresSignature => Verdict::Rejected,
            Flaw::TrustsAlteredAmount if input.field(0) == b"sig" => {
                Verdict::Accepted(String::from_utf8_lossy(body).into_owned())
            }
            Flaw::TrustsAlteredAmount => Verdict::Rejected,
        }
    }
}

fn broken(flaw: Flaw) -> Broken {
    let body: &[u8] = match flaw {
        Flaw::Panics => b"{amount: 900}",
        _ => br#"{"amount": 900}"#,
    };
    Broken {
        flaw,
        seeds: vec![Input::new([b"sig", body])],
    }
}

#[test]
fn the_oracle_catches_a_panic() {
    let r = fuzz::run(&broken(Flaw::Panics), 1, 0, 500).unwrap();
    assert!(
        r.first
            .iter()
            .any(|f| matches!(&f.problem, Problem::Panic(m) if m.contains("quote in body"))),
        "{:?}",
        r.first
    );
}

#[test]
fn the_oracle_catches_a_verifier_that_ignores_the_signature() {
    let r = fuzz::run(&broken(Flaw::IgnoresSignature), 1, 0, 2_000).unwrap();
    assert!(
        r.first
            .iter()
            .any(|f| matches!(f.problem, Problem::AcceptedRandom(_))),
        "{:?}",
        r.first
    );
}

#[test]
fn the_oracle_catches_an_altered_message_accepted_as_something_else() {
    let r = fuzz::run(&broken(Flaw::TrustsAlteredAmount), 1, 0, 500).unwrap();
    assert!(
        r.first
            .iter()
            .any(|f| matches!(f.problem, Problem::AcceptedAltered(_))),
        "{:?}",
        r.first
    );
}

#[test]
fn a_run_is_replayed_from_seed_target_and_index() {
    let t = targets::build("sandbox").unwrap();
    assert_eq!(
        fuzz::generate(t.as_ref(), 9, 1234),
        fuzz::generate(t.as_ref(), 9, 1234)
    );
    assert_ne!(
        fuzz::generate(t.as_ref(), 9, 1234),
        fuzz::generate(t.as_ref(), 9, 1235)
    );
}
