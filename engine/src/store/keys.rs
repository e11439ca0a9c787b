//! Every Redis key Stampede uses, in one place.
//!
//! A campaign's keys all carry its hash tag `{c:ID}`, so every script's keys share one
//! slot and Redis Cluster runs it unchanged (`engine/tests/key_slots.rs` proves it for
//! every script). A user's keys carry `{u:ID}`. The only untagged keys are the registry
//! of claim streams the workers read ([`STREAMS`], written and read by plain commands,
//! never from a script) and the pub/sub channel (`crate::signals::CHANNEL`).

/// Hash: the campaign's rules and live counters. Fields: `kind` (`f` flash sale, `r`
/// red packet), `limit`, `starts`, `ends` (unix ms), `remaining`, `claims`, `sold`,
/// `cents`, `seq` (last claim sequence number). Its absence means the store has no
/// live state for the campaign.
pub fn state(campaign_id: u64) -> String {
    format!("{{c:{campaign_id}}}:state")
}

/// Hash: user id -> `held|claim id|quantity|amount|accepted ms|packet idx`.
pub fn users(campaign_id: u64) -> String {
    format!("{{c:{campaign_id}}}:users")
}

/// List: the unclaimed red packets as `idx:amount`, popped from the left.
pub fn packets(campaign_id: u64) -> String {
    format!("{{c:{campaign_id}}}:packets")
}

/// Stream: accepted claim events waiting to be persisted (acknowledged entries are
/// deleted, so its length is the campaign's backlog).
pub fn stream(campaign_id: u64) -> String {
    format!("{{c:{campaign_id}}}:claims")
}

/// Stream: claim events set aside because they could not be persisted (or read), with
/// fields `e` (the event), `reason`, `entry` (its id in the claim stream), `at` (ms).
pub fn dead_letters(campaign_id: u64) -> String {
    format!("{{c:{campaign_id}}}:dead")
}

/// String: held while a rebuild of the campaign's live state runs (expires on its own).
pub fn rebuild_lock(campaign_id: u64) -> String {
    format!("{{c:{campaign_id}}}:rebuild")
}

/// String: the reply of one claim batch, kept briefly so that the same batch re-sent by
/// the client library is answered again instead of deciding twice (`lua/claim.lua`).
pub fn batch(campaign_id: u64, batch_id: &str) -> String {
    format!("{{c:{campaign_id}}}:batch:{batch_id}")
}

/// String: the answer of one dead-letter replay (`lua/replay.lua`), kept briefly for a
/// re-sent call.
pub fn replay(campaign_id: u64, replay_id: &str) -> String {
    format!("{{c:{campaign_id}}}:replay:{replay_id}")
}

/// Hash: load id -> the last chunk of red packets that load appended
/// (`lua/load_packets.lua`), so a re-sent chunk is not appended twice.
pub fn loading(campaign_id: u64) -> String {
    format!("{{c:{campaign_id}}}:loading")
}

/// The campaign id in a stream key made by [`stream`].
pub fn stream_campaign(key: &str) -> Option<u64> {
    key.strip_prefix("{c:")?.split_once('}')?.0.parse().ok()
}

/// Hash: a user's sign-in records, day (`YYYY-MM-DD`) -> `pending` or
/// `points|streak|balance`. Tagged by user, like every sign-in key.
pub fn signin_days(user_id: &str) -> String {
    format!("{{u:{user_id}}}:signin:days")
}

/// Bitmap: the days of `month` (`YYYY-MM`) the user signed in on, bit N for day N.
pub fn signin_month(user_id: &str, month: &str) -> String {
    format!("{{u:{user_id}}}:signin:{month}")
}

/// Sorted set: the first page of the user's persisted claims, newest first (see
/// `crate::claim_lists`).
pub fn user_claims(user_id: &str) -> String {
    format!("{{u:{user_id}}}:claims")
}

/// Set: the keys of every campaign's claim stream, for the workers to read.
pub const STREAMS: &str = "stampede:streams";

/// The consumer group all workers share.
pub const GROUP: &str = "stampede-workers";

#[cfg(test)]
mod tests {
    #[test]
    fn stream_keys_round_trip() {
        assert_eq!(super::stream_campaign(&super::stream(17)), Some(17));
        assert_eq!(super::stream_campaign("other"), None);
    }
}
