//! The crowd's arrival order for a burst: every user once, some users twice, shuffled.
//!
//! A user who sends twice (a double tap, a retrying app) is the case that breaks naive
//! per-user limits, but only if the two requests are in flight *together*. So a user's
//! second request is placed a few positions after the first — within `race_window`, which
//! the scenarios set to the number of connections — where another connection will carry it
//! while the first is still being served. Everything else is a uniform shuffle, seeded so
//! a run can be repeated exactly.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// The request order as indices into the user list.
///
/// `twice` is the fraction of users (0.0..=1.0) who send a second, racing request.
pub fn arrival_order(users: usize, twice: f64, race_window: usize, seed: u64) -> Vec<u32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<u32> = (0..users).map(|u| u as u32).collect();
    order.shuffle(&mut rng);

    let doubles = ((users as f64) * twice.clamp(0.0, 1.0)).round() as usize;
    let mut chosen: Vec<u32> = (0..users).map(|u| u as u32).collect();
    let (chosen, _) = chosen.partial_shuffle(&mut rng, doubles);
    let mut is_double = vec![false; users];
    for &u in chosen.iter() {
        is_double[u as usize] = true;
    }

    // Sort keys: a user's first request keeps its shuffled position; the second lands a
    // random 0.5..window positions later, so the two race.
    let window = race_window.max(1) as f64 + 0.5;
    let mut keyed: Vec<(f64, u32)> = Vec::with_capacity(users + doubles);
    for (position, &user) in order.iter().enumerate() {
        keyed.push((position as f64, user));
        if is_double[user as usize] {
            keyed.push((position as f64 + rng.random_range(0.5..window), user));
        }
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    keyed.into_iter().map(|(_, user)| user).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_comes_once_and_the_chosen_fraction_twice() {
        let order = arrival_order(1000, 0.1, 16, 7);
        assert_eq!(order.len(), 1100);
        let mut counts = vec![0; 1000];
        for &u in &order {
            counts[u as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c == 1 || c == 2));
        assert_eq!(counts.iter().filter(|&&c| c == 2).count(), 100);
    }

    #[test]
    fn a_users_two_requests_are_close_enough_to_race() {
        let order = arrival_order(5000, 0.2, 8, 1);
        let mut first = vec![None; 5000];
        for (pos, &u) in order.iter().enumerate() {
            match first[u as usize] {
                None => first[u as usize] = Some(pos),
                Some(p) => assert!(pos - p <= 8 + 8, "user {u} at {p} and {pos}"),
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_order() {
        assert_eq!(arrival_order(100, 0.5, 4, 3), arrival_order(100, 0.5, 4, 3));
        assert_ne!(arrival_order(100, 0.5, 4, 3), arrival_order(100, 0.5, 4, 4));
    }
}
