//! Fuzzing of every parser Tollgate exposes to the network, with a property checked on every
//! run: the parser never panics, and never accepts an unsigned or altered input as something
//! a genuine input does not say.
//!
//! Each [`Target`] wraps one parser behind its stable entry point (a provider's callback
//! verifier, the App Store verifier, the Play push check, the stream-token verifier and
//! verify hook, JWT authentication, money strings, the catalog) and brings GENUINE inputs,
//! signed with the test keys. A run feeds it, under `catch_unwind`, a mutant of a genuine
//! input (see [`mutate`]), a mutant of genuine content signed afresh with the test keys
//! (where the target can sign: this reaches the parsing behind the signature check), or an
//! input of purely random fields (one run in ten), and judges the [`Verdict`]:
//! - a panic is a finding;
//! - a mutant that is accepted must yield exactly what one of the genuine inputs yields (the
//!   same provider event, claims, user), so an altered message can never produce a
//!   different accepted result; a purely random input must never be accepted; a re-signed
//!   mutant is genuinely signed, so it may be accepted as what it says;
//! - targets without a signature (money, catalog) check what they accept themselves (a
//!   reference parser, invariants) and answer [`Verdict::Valid`] or [`Verdict::Wrong`].
//!
//! This is mutation fuzzing, not coverage-guided: no feedback steers the inputs. Every run
//! draws from its own generator ([`rng::Rng::for_run`]), so a finding is replayed from the
//! campaign seed, the target and the run index alone.

pub mod mutate;
pub mod rng;
pub mod targets;

use rng::Rng;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// One input: its fields in the order the target names them ([`Target::fields`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input(pub Vec<Vec<u8>>);

impl Input {
    pub fn new<const N: usize>(fields: [&[u8]; N]) -> Self {
        Input(fields.iter().map(|f| f.to_vec()).collect())
    }

    /// Field `i` (empty if absent).
    pub fn field(&self, i: usize) -> &[u8] {
        self.0.get(i).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Field `i` as text, invalid UTF-8 replaced: for entry points that take `&str`, whose
    /// callers (JSON, HTTP headers) hand over text only.
    pub fn text(&self, i: usize) -> String {
        String::from_utf8_lossy(self.field(i)).into_owned()
    }

    /// Every field named and escaped, long ones cut, for a finding's report.
    pub fn describe(&self, names: &[&str]) -> String {
        const MAX: usize = 4096;
        let mut out = String::new();
        for (i, f) in self.0.iter().enumerate() {
            let name = names.get(i).copied().unwrap_or("?");
            let shown: String = f[..f.len().min(MAX)].escape_ascii().to_string();
            let cut = if f.len() > MAX { " …(cut)" } else { "" };
            out.push_str(&format!(
                "  {name} ({} bytes): b\"{shown}\"{cut}\n",
                f.len()
            ));
        }
        out
    }
}

/// What a parser made of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Rejected,
    /// Accepted, yielding this (a canonical rendering of the event, claims or user), which
    /// must be what a genuine input yields.
    Accepted(String),
    /// Accepted, and the target's own check of what was accepted passed (unsigned inputs).
    Valid,
    /// The target's own check failed: why.
    Wrong(String),
}

/// A parser under test.
pub trait Target {
    fn name(&self) -> &'static str;
    /// What each field of an input is (a header, the body, ...).
    fn fields(&self) -> &'static [&'static str];
    /// Genuine inputs: each must be accepted.
    fn seeds(&self) -> &[Input];
    /// Runs the parser on `input`.
    fn check(&self, input: &Input) -> Verdict;

    /// Genuine content before it is signed, for targets that can sign with the test keys:
    /// mutants of it are signed ([`Target::seal`]) so that the parsing behind the signature
    /// check is reached too, which a mutated signed input never gets past. Empty: none.
    fn plain_seeds(&self) -> &[Input] {
        &[]
    }

    /// Signs plain content (as [`Target::plain_seeds`] lays it out) into an input, as the
    /// genuine sender would.
    fn seal(&self, plain: &Input) -> Input {
        plain.clone()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A genuine input, mutated: whatever it is accepted as must be genuine.
    Mutant,
    /// Genuine content, mutated, then signed with the test keys: it may be accepted as
    /// anything, but must not panic (or fail the target's own check).
    Resigned,
    /// Random fields: never accepted.
    Random,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Panic(String),
    /// An altered input accepted as something no genuine input says.
    AcceptedAltered(String),
    /// A purely random input accepted.
    AcceptedRandom(String),
    Wrong(String),
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub target: &'static str,
    pub seed: u64,
    pub index: u64,
    pub origin: Origin,
    pub problem: Problem,
    pub input: Input,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {:?} on run {} ({:?} input); replay: scripts/fuzz --target {} --seed {} --start {} --runs 1",
            self.target, self.problem, self.index, self.origin, self.target, self.seed, self.index
        )?;
        Ok(())
    }
}

/// What a campaign against one target found.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: &'static str,
    pub seed: u64,
    pub runs: u64,
    pub random: u64,
    pub resigned: u64,
    /// Runs whose input was accepted (genuine-equal outcomes and valid unsigned inputs).
    pub accepted: u64,
    pub findings: u64,
    /// The first findings, with their inputs.
    pub first: Vec<Finding>,
    pub elapsed: Duration,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.runs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How many findings a report keeps with their inputs.
const KEPT: usize = 10;

thread_local! {
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// While a parser runs, a panic's message is kept for the report instead of printed; other
/// threads' panics (other tests) are reported as usual.
fn install_panic_capture() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic".into());
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{at}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs the parser, turning a panic into `Err(message)`.
fn guarded(target: &dyn Target, input: &Input) -> Result<Verdict, String> {
    CAPTURING.with(|c| c.set(true));
    let r = catch_unwind(AssertUnwindSafe(|| target.check(input)));
    CAPTURING.with(|c| c.set(false));
    r.map_err(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "panic".into())
    })
}

/// The input of run `index` of a campaign: one in ten is purely random; of the rest, a third
/// are re-signed mutants where the target can sign, the others mutants of genuine inputs.
pub fn generate(target: &dyn Target, seed: u64, index: u64) -> (Origin, Input) {
    let mut rng = Rng::for_run(seed, target.name(), index);
    if rng.chance(1, 10) {
        (
            Origin::Random,
            mutate::random_input(&mut rng, target.fields().len()),
        )
    } else if !target.plain_seeds().is_empty() && rng.chance(1, 3) {
        let plain = mutate::mutant(&mut rng, target.plain_seeds());
        (Origin::Resigned, target.seal(&plain))
    } else {
        (Origin::Mutant, mutate::mutant(&mut rng, target.seeds()))
    }
}

/// Runs `runs` inputs (indices `start..start + runs`) of campaign `seed` against `target`.
/// `Err` when the target itself is broken: a genuine input is refused or panics.
pub fn run(target: &dyn Target, seed: u64, start: u64, runs: u64) -> Result<Report, String> {
    install_panic_capture();
    let names = target.fields();
    let mut genuine = BTreeSet::new();
    for (i, s) in target.seeds().iter().enumerate() {
        if s.0.len() != names.len() {
            return Err(format!(
                "{}: seed {i} has the wrong number of fields",
                target.name()
            ));
        }
        match guarded(target, s) {
            Ok(Verdict::Accepted(o)) => {
                genuine.insert(o);
            }
            Ok(Verdict::Valid) => {}
            other => {
                return Err(format!(
                    "{}: genuine seed {i} is not accepted: {other:?}\n{}",
                    target.name(),
                    s.describe(names)
                ))
            }
        }
    }
    for (i, p) in target.plain_seeds().iter().enumerate() {
        match guarded(target, &target.seal(p)) {
            Ok(Verdict::Accepted(_) | Verdict::Valid) => {}
            other => {
                return Err(format!(
                    "{}: genuine plain seed {i}, signed, is not accepted: {other:?}\n{}",
                    target.name(),
                    target.seal(p).describe(names)
                ))
            }
        }
    }
    let mut report = Report {
        target: target.name(),
        seed,
        runs,
        random: 0,
        resigned: 0,
        accepted: 0,
        findings: 0,
        first: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let started = Instant::now();
    for index in start..start.saturating_add(runs) {
        let (origin, input) = generate(target, seed, index);
        match origin {
            Origin::Random => report.random += 1,
            Origin::Resigned => report.resigned += 1,
            Origin::Mutant => {}
        }
        let problem = match guarded(target, &input) {
            Err(msg) => Some(Problem::Panic(msg)),
            Ok(Verdict::Rejected) => None,
            Ok(Verdict::Valid) => {
                report.accepted += 1;
                None
            }
            Ok(Verdict::Wrong(why)) => Some(Problem::Wrong(why)),
            Ok(Verdict::Accepted(o)) => {
                report.accepted += 1;
                match origin {
                    Origin::Random => Some(Problem::AcceptedRandom(o)),
                    Origin::Mutant if !genuine.contains(&o) => Some(Problem::AcceptedAltered(o)),
                    Origin::Mutant | Origin::Resigned => None,
                }
            }
        };
        if let Some(problem) = problem {
            report.findings += 1;
            if report.first.len() < KEPT {
                report.first.push(Finding {
                    target: target.name(),
                    seed,
                    index,
                    origin,
                    problem,
                    input,
                });
            }
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
