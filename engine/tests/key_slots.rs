//! Every script touches keys of ONE slot only, so Redis Cluster runs it (README,
//! "Running on a Redis Cluster"). Proven from the sources, for every script in `lua/`:
//! - every `redis.call` names its key through `KEYS[n]`, never a key built in the script
//!   (a key the caller did not declare may live in another slot);
//! - the keys a script's header declares all carry one hash tag (`{c:ID}` or `{u:ID}`);
//! - the key builders a script is called with (`store::keys`) put every key of one
//!   campaign, and every key of one user, in the same slot.
//!
//! The cluster half of the conformance suite then runs every script on a real cluster,
//! which refuses a cross-slot script outright.

use std::path::Path;

use redis::cluster_routing::Slot;
use stampede_engine::store::keys;

fn scripts() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lua");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("lua/")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "lua"))
        .map(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read_to_string(&p).expect("read script"))
        })
        .collect();
    out.sort();
    assert!(out.len() >= 9, "the scripts were found");
    out
}

#[test]
fn every_redis_call_in_a_script_names_a_declared_key() {
    for (name, text) in scripts() {
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut calls = 0;
        for (at, _) in code.match_indices("redis.call(") {
            calls += 1;
            let rest = &code[at + "redis.call(".len()..];
            let mut args = rest.splitn(3, ',');
            let command = args.next().unwrap_or("").trim();
            let key = args.next().unwrap_or("").trim();
            assert!(
                key.starts_with("KEYS["),
                "{name}: redis.call({command}, {key}...) does not name a key from KEYS"
            );
        }
        assert!(calls > 0, "{name} calls Redis");
    }
}

#[test]
fn the_keys_a_script_declares_carry_one_hash_tag() {
    for (name, text) in scripts() {
        let tags: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("-- KEYS["))
            .filter_map(|l| {
                let key = l.split_whitespace().nth(1)?;
                Some(&key[..key.find('}')? + 1])
            })
            .collect();
        assert!(!tags.is_empty(), "{name} declares its KEYS in its header");
        assert!(
            tags.iter()
                .all(|t| *t == tags[0] && (t.starts_with("{c:") || t.starts_with("{u:"))),
            "{name} declares keys of more than one hash tag: {tags:?}"
        );
    }
}

#[test]
fn a_campaigns_keys_and_a_users_keys_each_share_one_slot() {
    for id in [1u64, 17, 4_096, 1 << 40] {
        let slot = Slot::for_key(keys::state(id));
        for key in [
            keys::users(id),
            keys::packets(id),
            keys::stream(id),
            keys::dead_letters(id),
            keys::rebuild_lock(id),
            keys::batch(id, "0123456789abcdef"),
            keys::replay(id, "0123456789abcdef"),
            keys::loading(id),
            keys::BucketKeys::campaign(id).orders(),
            keys::BucketKeys::campaign(id).deadlines(),
            keys::BucketKeys::campaign(id).refunds(),
            keys::event_stream(id),
            keys::event_dead_letters(id),
            keys::funnel(id),
        ] {
            assert_eq!(
                Slot::for_key(&key),
                slot,
                "{key} is in campaign {id}'s slot"
            );
        }
    }
    for user in ["u1", "alice.b-c_d", "Z"] {
        let slot = Slot::for_key(keys::signin_days(user));
        for key in [keys::signin_month(user, "2026-12"), keys::user_claims(user)] {
            assert_eq!(Slot::for_key(&key), slot, "{key} is in user {user}'s slot");
        }
    }
    // Different campaigns spread over the slots (one hot campaign is one slot; buckets
    // are how it spreads further).
    let slots: std::collections::HashSet<_> = (1..=64u64)
        .map(|id| Slot::for_key(keys::state(id)))
        .collect();
    assert!(
        slots.len() > 32,
        "campaign tags hash apart: {}",
        slots.len()
    );
}

#[test]
fn a_bucketed_campaigns_behaviour_events_spread_over_its_buckets_slots() {
    use stampede_engine::buckets::home_bucket;
    for (id, n) in [(17u64, 4u64), (4_096, 8)] {
        let mut slots = std::collections::HashSet::new();
        for b in 0..n {
            let bk = keys::BucketKeys::new(id, b, n);
            let slot = Slot::for_key(bk.state());
            for key in [
                bk.events(),
                bk.event_dead_letters(),
                bk.event_replay("0123"),
            ] {
                assert_eq!(Slot::for_key(&key), slot, "{key} is in its bucket's slot");
            }
            assert_eq!(
                keys::event_dead_letters_of(&bk.events()),
                Some(bk.event_dead_letters())
            );
            slots.insert(slot);
        }
        assert_eq!(slots.len() as u64, n, "one slot a bucket");
        // A crowd's users land on every bucket's stream.
        let used: std::collections::HashSet<u64> = (0..1_000)
            .map(|u| home_bucket(&format!("user{u}"), n))
            .collect();
        assert_eq!(used.len() as u64, n);
    }
}
