//! The long fuzzing campaign (`scripts/fuzz`): runs the targets of `tollgate_tests::fuzz`
//! for `--runs` inputs each and prints one line of figures per target, then every finding
//! with its input. Exits 1 if anything was found, 2 on a usage error or a broken target.
//!
//! ```text
//! fuzz [--runs N] [--target NAME]... [--seed S] [--start I] [--show]
//! ```
//! `--start I --runs 1 --show` replays run I and prints its input.

use std::process::ExitCode;
use tollgate_tests::fuzz::{self, targets};

struct Args {
    runs: u64,
    targets: Vec<String>,
    seed: u64,
    start: u64,
    show: bool,
}

const USAGE: &str = "usage: fuzz [--runs N] [--target NAME]... [--seed S] [--start I] [--show]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        runs: 1_000_000,
        targets: Vec::new(),
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1),
        start: 0,
        show: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "--runs" => a.runs = number(value()?)?,
            "--seed" => a.seed = number(value()?)?,
            "--start" => a.start = number(value()?)?,
            "--target" => a.targets.push(value()?),
            "--show" => a.show = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if a.targets.is_empty() {
        a.targets = targets::NAMES.iter().map(|s| s.to_string()).collect();
    }
    if let Some(bad) = a
        .targets
        .iter()
        .find(|t| !targets::NAMES.contains(&t.as_str()))
    {
        return Err(format!(
            "unknown target {bad:?}; targets: {}",
            targets::NAMES.join(", ")
        ));
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "seed {} · runs {}..{} per target",
        args.seed,
        args.start,
        args.start.saturating_add(args.runs)
    );
    println!(
        "{:<20} {:>10} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9}",
        "target", "runs", "random", "resigned", "accepted", "exec/s", "seconds", "findings"
    );
    let mut findings = Vec::new();
    let mut total = 0u64;
    for name in &args.targets {
        let Some(target) = targets::build(name) else {
            eprintln!("unknown target {name}");
            return ExitCode::from(2);
        };
        if args.show {
            for i in args.start..args.start.saturating_add(args.runs) {
                let (origin, input) = fuzz::generate(target.as_ref(), args.seed, i);
                println!(
                    "{name} run {i} ({origin:?}):\n{}",
                    input.describe(target.fields())
                );
            }
        }
        let report = match fuzz::run(target.as_ref(), args.seed, args.start, args.runs) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
        println!(
            "{:<20} {:>10} {:>9} {:>9} {:>9} {:>10.0} {:>9.1} {:>9}",
            name,
            report.runs,
            report.random,
            report.resigned,
            report.accepted,
            report.per_second(),
            report.elapsed.as_secs_f64(),
            report.findings
        );
        total += report.findings;
        for f in &report.first {
            findings.push(format!("{f}{}", f.input.describe(target.fields())));
        }
    }
    for f in &findings {
        println!("\n{f}");
    }
    if total > 0 {
        println!("\n{total} findings");
        ExitCode::from(1)
    } else {
        println!("\nno findings");
        ExitCode::SUCCESS
    }
}
