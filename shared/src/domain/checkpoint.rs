//! Checkpoints: what a user's ended grants of one scope still contribute, so that an
//! entitlement check reads and folds only the grants that can still matter.
//!
//! Grants of a scope are ordered by their key `(paid_at, source_id)`, the order passes stack
//! in (`end = max(end, paid_at) + days`). A checkpoint of a scope holds a cutoff key and what
//! the grants before it add up to: the end of their passes' chain (`chain_end`) and, per
//! product, the latest end of their unrevoked windows (for "had bought" and Huya's
//! `expire`). Every grant before the cutoff is *archived* (kept for support, out of the range
//! a check reads), except grants listed in `kept`: grants that are not passes and were still
//! running, which stay where they are and count as themselves.
//!
//! Why this is exact. A check folds the passes from the cutoff on, starting at `chain_end`,
//! which is what the whole history folds to, as long as nothing before the cutoff changed.
//! Only writes can change that, and every write of a grant goes to its live key (never to the
//! archive): a new grant, a refund or reversal (which writes the whole grant back), a
//! manual revocation, a store purchase rewritten. So a grant found live before the cutoff
//! that is a pass, or is not listed in `kept`, means the checkpoint may be out of date
//! ([`is_stale`]): the check then reads the whole history instead, and the next fold repairs
//! the checkpoint. Archived windows all ended a margin before their fold, so they cover no
//! instant a later check can ask about.
//!
//! Folding ([`plan`]) moves grants in steps of at most [`MAX_WRITES`] writes (one
//! transaction each), each leaving a valid checkpoint: the cutoff only ever stands where
//! every pass before it is archived and nothing archived lies after it.

use super::grant::{stacked_from, Grant, Term, DAY};
use std::collections::{BTreeMap, BTreeSet};

/// A window is archived once it ended this long ago: a check at an instant a little before
/// the fold (another function's clock) still finds every window it could cover.
pub const FOLD_MARGIN: i64 = DAY;

/// A check folds when it finds at least this many live grants that a fold would archive (or
/// a stale checkpoint): folding costs a write, so it waits until it saves something.
pub const FOLD_AT: usize = 16;

/// Writes per fold step: a DynamoDB transaction holds at most 100 actions.
pub const MAX_WRITES: usize = 96;

/// Where a grant stands in its scope's stacking order.
pub type GrantKey = (i64, String);

fn key_of(g: &Grant) -> (i64, &str) {
    (g.paid_at, g.source_id.as_str())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub scope: String,
    /// Every grant of the scope ordered before this key is archived, except `kept`.
    pub before: GrantKey,
    /// End of the archived passes' chain; `None` when no unrevoked pass is archived.
    pub chain_end: Option<i64>,
    /// Sources of the grants before the cutoff left live (running windows, subscriptions,
    /// forever grants): they count as themselves.
    pub kept: BTreeSet<String>,
    /// Product → latest end of its archived unrevoked grants.
    pub products: BTreeMap<String, i64>,
    /// Counts the checkpoint's writes; each fold is conditioned on the version it read.
    pub version: u64,
}

impl Checkpoint {
    fn empty(scope: &str) -> Self {
        Checkpoint {
            scope: scope.to_owned(),
            before: (i64::MIN, String::new()),
            chain_end: None,
            kept: BTreeSet::new(),
            products: BTreeMap::new(),
            version: 0,
        }
    }

    fn is_before(&self, g: &Grant) -> bool {
        key_of(g) < (self.before.0, self.before.1.as_str())
    }

    /// Whether live grant `g` shows this checkpoint may be out of date.
    fn made_stale_by(&self, g: &Grant) -> bool {
        g.scope == self.scope
            && self.is_before(g)
            && (matches!(g.term, Term::Days(_)) || !self.kept.contains(&g.source_id))
    }

    /// The same checkpoint, whatever its version.
    fn same_as(&self, other: &Checkpoint) -> bool {
        Checkpoint {
            version: other.version,
            ..self.clone()
        } == *other
    }
}

/// Whether a check of these live grants needs the whole history: a grant was written before
/// a checkpoint's cutoff after that checkpoint was made.
pub fn is_stale(live: &[Grant], checkpoints: &[Checkpoint]) -> bool {
    !checkpoints.is_empty()
        && live.iter().any(|g| {
            checkpoints
                .iter()
                .any(|c| c.scope == g.scope && c.made_stale_by(g))
        })
}

/// The whole history: every live grant, and every archived one that has no live copy (a
/// live copy is always the newer one).
pub fn merge_history(live: &[Grant], archived: &[Grant]) -> Vec<Grant> {
    let here: BTreeSet<(&str, &str)> = live
        .iter()
        .map(|g| (g.scope.as_str(), g.source_id.as_str()))
        .collect();
    archived
        .iter()
        .filter(|g| !here.contains(&(g.scope.as_str(), g.source_id.as_str())))
        .chain(live)
        .cloned()
        .collect()
}

/// One fold step of one scope: written all or nothing, only if the checkpoint is still at
/// `expected_version` (0: none stored) and every grant moved is still as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldStep {
    /// As it will be stored (its version is `expected_version + 1`).
    pub checkpoint: Checkpoint,
    pub expected_version: u64,
    /// Live grants, as read, moved to the archive (replacing an archived copy, if any).
    pub archive: Vec<Grant>,
    /// Archived grants, as read, moved back live (their live key must still be empty).
    pub restore: Vec<Grant>,
    /// Archived copies, as read, that a live copy replaces: deleted.
    pub drop: Vec<Grant>,
}

impl FoldStep {
    /// Items the step writes, the checkpoint included.
    pub fn writes(&self) -> usize {
        1 + 2 * self.archive.len() + 2 * self.restore.len() + self.drop.len()
    }
}

/// Whether a check that read `live` should fold now: a checkpoint is stale, or at least
/// [`FOLD_AT`] live grants have ended (or were revoked) a margin before `now`.
pub fn fold_due(live: &[Grant], checkpoints: &[Checkpoint], now: i64) -> bool {
    if is_stale(live, checkpoints) {
        return true;
    }
    let horizon = now - FOLD_MARGIN;
    let revoked = live.iter().filter(|g| g.revoked_at.is_some()).count();
    if revoked >= FOLD_AT {
        return true;
    }
    let ended = super::grant::windows_with(live, checkpoints)
        .iter()
        .filter(|w| w.valid_until.is_some_and(|u| u <= horizon))
        .count();
    revoked + ended >= FOLD_AT
}

/// The next fold step, if any, for the first scope that has one. `archived` is the archive
/// as read with the whole history (`None` after an ordinary check: scopes whose checkpoint
/// is stale then wait for a history read).
pub fn plan(
    live: &[Grant],
    archived: Option<&[Grant]>,
    checkpoints: &[Checkpoint],
    now: i64,
) -> Option<FoldStep> {
    let mut scopes: BTreeSet<&str> = live.iter().map(|g| g.scope.as_str()).collect();
    scopes.extend(
        archived
            .unwrap_or_default()
            .iter()
            .map(|g| g.scope.as_str()),
    );
    scopes.extend(checkpoints.iter().map(|c| c.scope.as_str()));
    let horizon = now - FOLD_MARGIN;
    scopes.into_iter().find_map(|scope| {
        let cp = checkpoints.iter().find(|c| c.scope == scope);
        let mine: Vec<&Grant> = live.iter().filter(|g| g.scope == scope).collect();
        let stale = cp.is_some_and(|c| mine.iter().any(|g| c.made_stale_by(g)));
        match archived {
            Some(archived) => {
                let old: Vec<&Grant> = archived.iter().filter(|g| g.scope == scope).collect();
                plan_scope(scope, &mine, Some(&old), cp, horizon)
            }
            None if stale => None,
            None => plan_scope(scope, &mine, None, cp, horizon),
        }
    })
}

/// One grant as stored: its live copy, its archived copy, or both.
struct Entry<'a> {
    /// The grant as it stands (the live copy when there is one).
    grant: &'a Grant,
    live: Option<&'a Grant>,
    archived: Option<&'a Grant>,
    /// Where its window ends (`None`: revoked, or never ends).
    end: Option<i64>,
}

impl Entry<'_> {
    fn is_pass(&self) -> bool {
        matches!(self.grant.term, Term::Days(_))
    }

    /// A grant that is not a pass and still runs at `horizon` may stay live before a cutoff.
    fn keepable(&self, horizon: i64) -> bool {
        !self.is_pass()
            && self.grant.revoked_at.is_none()
            && (matches!(self.grant.term, Term::Forever) || self.end.is_some_and(|e| e > horizon))
    }
}

/// With `archived` (a history read), the scope is planned from scratch over every grant;
/// without, onwards from its checkpoint over the live grants.
fn plan_scope(
    scope: &str,
    live: &[&Grant],
    archived: Option<&[&Grant]>,
    cp: Option<&Checkpoint>,
    horizon: i64,
) -> Option<FoldStep> {
    let empty = Checkpoint::empty(scope);
    let current = cp.unwrap_or(&empty);
    // From scratch, the archive is read and re-judged; otherwise the checkpoint stands for it.
    let start = if archived.is_some() { &empty } else { current };
    let mut by_source: BTreeMap<&str, (Option<&Grant>, Option<&Grant>)> = BTreeMap::new();
    for g in live {
        by_source.entry(&g.source_id).or_default().0 = Some(g);
    }
    for g in archived.unwrap_or_default() {
        by_source.entry(&g.source_id).or_default().1 = Some(g);
    }
    let mut entries: Vec<Entry> = by_source
        .into_values()
        .filter_map(|(l, a)| {
            Some(Entry {
                grant: l.or(a)?,
                live: l,
                archived: a,
                end: None,
            })
        })
        .collect();
    entries.sort_by(|a, b| key_of(a.grant).cmp(&key_of(b.grant)));
    // Windows: passes stacked from the start's chain end, the rest as themselves.
    let grants: Vec<&Grant> = entries.iter().map(|e| e.grant).collect();
    let ends = stacked_from(&grants, start.chain_end);
    for (e, end) in entries.iter_mut().zip(ends) {
        e.end = end;
    }
    // The furthest cutoff: before the first pass still running at the horizon, and before
    // anything paid after the horizon.
    let first_running = entries
        .iter()
        .find(|e| e.is_pass() && e.grant.revoked_at.is_none() && e.end.is_some_and(|u| u > horizon))
        .map(|e| key_of(e.grant));
    let limit = match first_running {
        Some(k) if k < (horizon, "") => k,
        _ => (horizon, ""),
    };
    let floor = (start.before.0, start.before.1.as_str());
    if limit < floor {
        return None;
    }
    // Candidate cutoffs, furthest first: the limit, then each grant's key below it down to
    // the current cutoff. The first whose mandatory writes fit is taken.
    let n = entries.len();
    let at_limit = entries.partition_point(|e| key_of(e.grant) < limit);
    let at_floor = entries.partition_point(|e| key_of(e.grant) < floor);
    let mut before = vec![0usize; n + 1];
    for (i, e) in entries.iter().enumerate() {
        before[i + 1] = before[i] + mandatory_before(e);
    }
    let mut after = vec![0usize; n + 1];
    for (i, e) in entries.iter().enumerate().rev() {
        after[i] = after[i + 1] + mandatory_after(e);
    }
    let pick = (at_floor..=at_limit)
        .rev()
        .find(|&i| 1 + before[i] + after[i] <= MAX_WRITES)?;
    let cut = if pick == at_limit {
        limit
    } else {
        key_of(entries[pick].grant)
    };
    let mandatory = before[pick] + after[pick];
    let mut step = FoldStep {
        checkpoint: Checkpoint {
            before: (cut.0, cut.1.to_owned()),
            version: current.version + 1,
            kept: BTreeSet::new(),
            ..start.clone()
        },
        expected_version: current.version,
        archive: Vec::new(),
        restore: Vec::new(),
        drop: Vec::new(),
    };
    let mut budget = MAX_WRITES - 1 - mandatory;
    for e in &entries {
        if key_of(e.grant) >= cut {
            match (e.live, e.archived) {
                (None, Some(a)) => step.restore.push(a.clone()),
                (Some(_), Some(a)) => step.drop.push(a.clone()),
                _ => {}
            }
            continue;
        }
        let archive = if e.is_pass() || e.live.is_none() {
            true
        } else if !e.keepable(horizon) && budget >= 2 {
            budget -= 2;
            true
        } else {
            false
        };
        if !archive {
            step.checkpoint.kept.insert(e.grant.source_id.clone());
            continue;
        }
        if let Some(l) = e.live {
            step.archive.push(l.clone());
        }
        if e.grant.revoked_at.is_none() {
            if let Some(end) = e.end {
                if e.is_pass() {
                    step.checkpoint.chain_end = Some(end);
                }
                let p = step
                    .checkpoint
                    .products
                    .entry(e.grant.product_id.clone())
                    .or_insert(end);
                *p = (*p).max(end);
            }
        }
    }
    let unchanged = step.archive.is_empty()
        && step.restore.is_empty()
        && step.drop.is_empty()
        && cp.is_some_and(|c| c.same_as(&step.checkpoint));
    (!unchanged).then_some(step)
}

/// Writes a cutoff after `e` cannot do without: a live pass goes to the archive.
fn mandatory_before(e: &Entry) -> usize {
    if e.live.is_some() && e.is_pass() {
        2
    } else {
        0
    }
}

/// Writes a cutoff before `e` cannot do without: an archived copy comes back live, or gives
/// way to the live copy.
fn mandatory_after(e: &Entry) -> usize {
    match (e.live.is_some(), e.archived.is_some()) {
        (false, true) => 2,
        (true, true) => 1,
        _ => 0,
    }
}

/// Applies `step` to one user's grants held in maps keyed by (scope, source): what the
/// embedded store does under its lock, and what the DynamoDB transaction's conditions
/// amount to. `false`, and nothing changed, when anything moved on since the read.
pub fn apply(
    step: &FoldStep,
    live: &mut BTreeMap<(String, String), Grant>,
    archived: &mut BTreeMap<(String, String), Grant>,
    checkpoints: &mut BTreeMap<String, Checkpoint>,
) -> bool {
    let k = |g: &Grant| (g.scope.clone(), g.source_id.clone());
    let stored_version = checkpoints
        .get(&step.checkpoint.scope)
        .map_or(0, |c| c.version);
    let as_read = stored_version == step.expected_version
        && step.archive.iter().all(|g| live.get(&k(g)) == Some(g))
        && step
            .restore
            .iter()
            .all(|g| archived.get(&k(g)) == Some(g) && !live.contains_key(&k(g)))
        && step.drop.iter().all(|g| archived.get(&k(g)) == Some(g));
    if !as_read {
        return false;
    }
    for g in &step.archive {
        live.remove(&k(g));
        archived.insert(k(g), g.clone());
    }
    for g in &step.restore {
        archived.remove(&k(g));
        live.insert(k(g), g.clone());
    }
    for g in &step.drop {
        archived.remove(&k(g));
    }
    checkpoints.insert(step.checkpoint.scope.clone(), step.checkpoint.clone());
    true
}

/// Checkpoints against the whole history, on seeded random lives: purchases (some paid in
/// the past), refunds and reversals of old and new orders, subscriptions rewritten, time
/// moving on, folds at random moments. Whatever happened, what a check reads (the live
/// grants and checkpoints, or the whole history when they are stale) must answer exactly
/// as the whole history does, for every scope, now and later.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::domain::grant::{self, product_status, product_status_with};

    // Seeded (the seed is printed on failure).
    use crate::domain::test_rng::Rng;

    const SCOPES: [&str; 3] = ["channel:main", "channel:vip", "stream:x"];
    const PRODUCTS: [&str; 3] = ["pass", "ticket", "sub"];
    /// Lives per run (each about 160 operations with a check after each).
    const SEEDS: u64 = 60;

    type Map = BTreeMap<(String, String), Grant>;

    #[derive(Default)]
    struct Model {
        /// The whole truth, as a store without checkpoints holds it.
        truth: Map,
        /// What was sold: what a refund or reversal writes back whole.
        sold: Map,
        live: Map,
        archived: Map,
        checkpoints: BTreeMap<String, Checkpoint>,
    }

    fn k(g: &Grant) -> (String, String) {
        (g.scope.clone(), g.source_id.clone())
    }

    impl Model {
        /// A write of grant `g` at its live key, as every store call makes it.
        fn write(&mut self, g: Grant) {
            self.truth.insert(k(&g), g.clone());
            self.live.insert(k(&g), g);
        }

        /// A refund (`revoke`) or a reversal, as the stores make them: the live copy is
        /// changed, or the whole grant as sold is written back live.
        fn set_revoked(&mut self, key: &(String, String), at: Option<i64>) {
            let mut g = self.live.get(key).or(self.sold.get(key)).cloned().unwrap();
            g.revoked_at = at;
            self.write(g);
        }

        /// What a check reads: live grants and checkpoints, or the whole history.
        fn read(&self) -> (Vec<Grant>, Vec<Checkpoint>, bool) {
            let live: Vec<Grant> = self.live.values().cloned().collect();
            let cps: Vec<Checkpoint> = self.checkpoints.values().cloned().collect();
            if is_stale(&live, &cps) {
                let archived: Vec<Grant> = self.archived.values().cloned().collect();
                (merge_history(&live, &archived), Vec::new(), true)
            } else {
                (live, cps, false)
            }
        }

        fn fold(&mut self, now: i64, force: bool) {
            let live: Vec<Grant> = self.live.values().cloned().collect();
            let cps: Vec<Checkpoint> = self.checkpoints.values().cloned().collect();
            if !force && !fold_due(&live, &cps, now) {
                return;
            }
            let archived: Vec<Grant> = self.archived.values().cloned().collect();
            let history = is_stale(&live, &cps).then_some(archived.as_slice());
            if let Some(step) = plan(&live, history, &cps, now) {
                assert!(step.writes() <= MAX_WRITES, "{step:#?}");
                assert!(apply(
                    &step,
                    &mut self.live,
                    &mut self.archived,
                    &mut self.checkpoints
                ));
            }
        }
    }

    fn term(rng: &mut Rng, now: i64) -> (Term, &'static str) {
        match rng.below(10) {
            0..=5 => (Term::Days(1 + rng.below(40) as u32), "pass"),
            6 | 7 => {
                let from = now + (rng.below(20) - 5) * DAY;
                (
                    Term::Window {
                        from,
                        until: from + (1 + rng.below(3)) * DAY,
                    },
                    "ticket",
                )
            }
            8 => (Term::Until(now + rng.below(30) * DAY), "sub"),
            _ => (Term::Forever, "sub"),
        }
    }

    #[test]
    fn checks_with_checkpoints_answer_as_the_whole_history() {
        let mut folded_any = 0;
        for seed in 1..=SEEDS {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut m = Model::default();
            let mut now = 1_000 * DAY;
            for step in 0..160 {
                match rng.below(20) {
                    0..=8 => {
                        let (term, product) = term(&mut rng, now);
                        // Mostly paid now; some arrive late, paid in the past.
                        let paid_at = if rng.below(8) == 0 {
                            now - rng.below(200) * DAY
                        } else {
                            now + rng.below(DAY as u64)
                        };
                        let g = Grant {
                            scope: SCOPES[rng.below(3) as usize].into(),
                            product_id: product.into(),
                            source_id: format!("o{step:04}"),
                            paid_at,
                            term,
                            revoked_at: None,
                            revoked_by: None,
                            revoke_reason: None,
                            max_views: None,
                            provider: None,
                        };
                        m.sold.insert(k(&g), g.clone());
                        m.write(g);
                    }
                    9 | 10 => {
                        // Refund of any order still paid, old or new.
                        let paid: Vec<_> = m
                            .truth
                            .values()
                            .filter(|g| g.revoked_at.is_none())
                            .map(k)
                            .collect();
                        if !paid.is_empty() {
                            let key = paid[rng.below(paid.len() as u64) as usize].clone();
                            m.set_revoked(&key, Some(now));
                        }
                    }
                    11 => {
                        let refunded: Vec<_> = m
                            .truth
                            .values()
                            .filter(|g| g.revoked_at.is_some())
                            .map(k)
                            .collect();
                        if !refunded.is_empty() {
                            let key = refunded[rng.below(refunded.len() as u64) as usize].clone();
                            m.set_revoked(&key, None);
                        }
                    }
                    12 => {
                        // A subscription's newer state, written whole.
                        let subs: Vec<_> = m
                            .truth
                            .values()
                            .filter(|g| matches!(g.term, Term::Until(_)))
                            .cloned()
                            .collect();
                        if !subs.is_empty() {
                            let mut g = subs[rng.below(subs.len() as u64) as usize].clone();
                            g.term = Term::Until(now + (rng.below(40) - 10) * DAY);
                            g.revoked_at = (rng.below(4) == 0).then_some(now);
                            m.write(g);
                        }
                    }
                    13..=16 => now += rng.below(6 * DAY as u64),
                    17 => m.fold(now, true),
                    _ => m.fold(now, false),
                }
                let (grants, cps, _) = m.read();
                let truth: Vec<Grant> = m.truth.values().cloned().collect();
                folded_any += usize::from(!m.archived.is_empty());
                for t in [
                    now,
                    now + DAY / 3,
                    now + 3 * DAY,
                    now + 20 * DAY,
                    now + 90 * DAY,
                ] {
                    for scope in SCOPES {
                        let s = vec![scope.to_string()];
                        assert_eq!(
                            grant::entitled_with(&grants, &cps, &s, t),
                            grant::entitled(&truth, &s, t),
                            "seed {seed} step {step}: {scope} at {t}"
                        );
                    }
                }
                assert_eq!(
                    grant::live_with(&grants, &cps, now),
                    grant::live(&truth, now),
                    "seed {seed} step {step}: live"
                );
                for p in PRODUCTS {
                    assert_eq!(
                        product_status_with(&grants, &cps, p, now),
                        product_status(&truth, p, now),
                        "seed {seed} step {step}: {p}"
                    );
                }
            }
            // Folding until nothing is left to fold leaves no stale checkpoint behind.
            for _ in 0..200 {
                m.fold(now, true);
            }
            let (_, _, stale) = m.read();
            assert!(!stale, "seed {seed}: still stale after folding");
        }
        assert!(
            folded_any > 500,
            "the folds archived too little to test: {folded_any}"
        );
    }

    #[test]
    fn a_long_history_folds_to_a_few_live_grants_in_bounded_steps() {
        let mut m = Model::default();
        let mut now = 0;
        for i in 0..1_000 {
            let g = Grant {
                scope: "channel:main".into(),
                product_id: "pass".into(),
                source_id: format!("o{i:04}"),
                paid_at: now,
                term: Term::Days(30),
                revoked_at: None,
                revoked_by: None,
                revoke_reason: None,
                max_views: None,
                provider: None,
            };
            m.sold.insert(k(&g), g.clone());
            m.write(g);
            now += 31 * DAY;
        }
        let mut steps = 0;
        while fold_due(
            &m.live.values().cloned().collect::<Vec<_>>(),
            &m.checkpoints.values().cloned().collect::<Vec<_>>(),
            now,
        ) {
            m.fold(now, false);
            steps += 1;
            assert!(steps < 100, "folding does not end");
        }
        assert!(m.live.len() < FOLD_AT, "{} live grants left", m.live.len());
        assert_eq!(m.archived.len() + m.live.len(), 1_000);
        // An old refund brings its grant back live, the check reads the history until the
        // next fold, and the answer is the whole history's all along.
        m.set_revoked(&("channel:main".into(), "o0003".into()), Some(now));
        let (grants, _, stale) = m.read();
        assert!(stale);
        let truth: Vec<Grant> = m.truth.values().cloned().collect();
        assert_eq!(grant::live(&grants, now), grant::live(&truth, now));
        m.fold(now, false);
        assert!(!m.read().2, "one fold repairs the checkpoint");
    }
}
