//! What each winner does with its order, decided before anything is sent.
//!
//! `--pay-share` of the winners pay. Among the payers, some pay late (after `pay_by`),
//! some have their notification sent twice with the same `payment_id` (providers retry),
//! and a few pay a second time with another `payment_id` (a double charge the engine must
//! refund). Of the rest, half cancel — some of those while a payment races the cancel —
//! and the others let the order expire. Counts are exact (rounded) shares of the batch,
//! spread over it by a seeded shuffle, so a run can be repeated.

use rand::seq::SliceRandom;
use rand::Rng;

/// Of the payers: the share who pay after `pay_by`.
pub const LATE_SHARE: f64 = 0.1;
/// Of the payers: the share whose notification is sent twice, same `payment_id`.
pub const REPEAT_SHARE: f64 = 0.2;
/// Of the payers: the share who also pay with a second, different `payment_id`.
pub const SECOND_SHARE: f64 = 0.05;
/// Of those who do not pay: the share who cancel (the rest let the order expire).
pub const CANCEL_SHARE: f64 = 0.5;
/// Of the cancellers: the share whose cancel races a payment for the same order.
pub const RACE_SHARE: f64 = 0.25;

/// When a late payment goes out, relative to `pay_by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Late {
    /// Inside the expiry grace: the sweeper may not have run, so `paid` and
    /// `order_expired` are both fair answers.
    InGrace,
    /// After the order must have expired: only `409 order_expired` is right.
    AfterExpiry,
}

/// One winner's plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Pay {
        late: Option<Late>,
        /// The same notification is sent twice, at once.
        repeat: bool,
        /// A second payment with another id is sent alongside.
        second: bool,
    },
    Cancel {
        /// A payment is sent at the same moment as the cancel.
        racing_payment: bool,
    },
    Expire,
}

/// Rounds `n × share` to a count.
fn share(n: usize, share: f64) -> usize {
    ((n as f64) * share.clamp(0.0, 1.0)).round() as usize
}

/// `count` distinct positions out of `0..n`, chosen by `rng`.
fn pick(n: usize, count: usize, rng: &mut impl Rng) -> Vec<bool> {
    let mut positions: Vec<usize> = (0..n).collect();
    positions.shuffle(rng);
    let mut chosen = vec![false; n];
    for &p in positions.iter().take(count) {
        chosen[p] = true;
    }
    chosen
}

/// The fates of `n` winners, in the winners' order.
pub fn plan(n: usize, pay_share: f64, rng: &mut impl Rng) -> Vec<Fate> {
    let payers = share(n, pay_share);
    let cancellers = share(n - payers, CANCEL_SHARE);
    let racing = share(cancellers, RACE_SHARE);
    let late = pick(payers, share(payers, LATE_SHARE), rng);
    let repeat = pick(payers, share(payers, REPEAT_SHARE), rng);
    let second = pick(payers, share(payers, SECOND_SHARE), rng);
    let mut fates = Vec::with_capacity(n);
    let mut late_payers = 0;
    for i in 0..payers {
        let late = late[i].then(|| {
            // Every other late payer goes after the certain expiry.
            late_payers += 1;
            if late_payers % 2 == 1 {
                Late::AfterExpiry
            } else {
                Late::InGrace
            }
        });
        fates.push(Fate::Pay {
            late,
            repeat: repeat[i],
            second: second[i],
        });
    }
    for i in 0..cancellers {
        fates.push(Fate::Cancel {
            racing_payment: i < racing,
        });
    }
    fates.resize(n, Fate::Expire);
    fates.shuffle(rng);
    fates
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn count(fates: &[Fate], what: impl Fn(&Fate) -> bool) -> usize {
        fates.iter().filter(|f| what(f)).count()
    }

    #[test]
    fn the_shares_are_exact_and_every_fate_occurs() {
        let fates = plan(200, 0.7, &mut StdRng::seed_from_u64(1));
        assert_eq!(fates.len(), 200);
        assert_eq!(count(&fates, |f| matches!(f, Fate::Pay { .. })), 140);
        assert_eq!(count(&fates, |f| matches!(f, Fate::Cancel { .. })), 30);
        assert_eq!(count(&fates, |f| *f == Fate::Expire), 30);
        let late = |f: &Fate| matches!(f, Fate::Pay { late: Some(_), .. });
        assert_eq!(count(&fates, late), 14);
        let after = |f: &Fate| {
            matches!(
                f,
                Fate::Pay {
                    late: Some(Late::AfterExpiry),
                    ..
                }
            )
        };
        assert_eq!(count(&fates, after), 7);
        assert_eq!(
            count(&fates, |f| matches!(f, Fate::Pay { repeat: true, .. })),
            28
        );
        assert_eq!(
            count(&fates, |f| matches!(f, Fate::Pay { second: true, .. })),
            7
        );
        let racing = |f: &Fate| {
            matches!(
                f,
                Fate::Cancel {
                    racing_payment: true
                }
            )
        };
        assert_eq!(count(&fates, racing), 8);
    }

    #[test]
    fn everyone_pays_at_a_share_of_one_and_nobody_at_zero() {
        let all = plan(10, 1.0, &mut StdRng::seed_from_u64(2));
        assert!(all.iter().all(|f| matches!(f, Fate::Pay { .. })));
        let none = plan(10, 0.0, &mut StdRng::seed_from_u64(2));
        assert_eq!(count(&none, |f| matches!(f, Fate::Cancel { .. })), 5);
        assert_eq!(count(&none, |f| *f == Fate::Expire), 5);
        assert!(plan(0, 0.7, &mut StdRng::seed_from_u64(2)).is_empty());
    }

    #[test]
    fn the_same_seed_gives_the_same_plan() {
        let a = plan(50, 0.7, &mut StdRng::seed_from_u64(9));
        let b = plan(50, 0.7, &mut StdRng::seed_from_u64(9));
        assert_eq!(a, b);
    }
}
