//! Every Redis key Stampede uses, in one place.
//!
//! A campaign's keys all carry its hash tag `{c:ID}`, so every script's keys share one
//! slot and Redis Cluster runs it unchanged (`engine/tests/key_slots.rs` proves it for
//! every script). A user's keys carry `{u:ID}`. The only untagged keys are the registries
//! of streams the workers read ([`STREAMS`] for claims, [`EVENT_STREAMS`] for behaviour
//! events; written and read by plain commands, never from a script) and the pub/sub
//! channel (`crate::signals::CHANNEL`).

/// A bucket's keys: every key of one bucket of a campaign, under its hash tag (`{c:ID}`
/// for an unbucketed campaign and for bucket 0, `{c:ID:bB-K}` for the others: see
/// [`crate::buckets`]). Every script takes the keys of one bucket only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketKeys {
    tag: String,
}

impl BucketKeys {
    /// Bucket `bucket` of `buckets` of the campaign.
    pub fn new(campaign_id: u64, bucket: u64, buckets: u64) -> BucketKeys {
        BucketKeys {
            tag: crate::buckets::tag(campaign_id, bucket, buckets),
        }
    }

    /// The campaign's own tag (bucket 0).
    pub fn campaign(campaign_id: u64) -> BucketKeys {
        Self::new(campaign_id, 0, 1)
    }

    /// The bucket whose claim stream is `stream` (a key made by [`BucketKeys::stream`]).
    pub fn of_stream(stream: &str) -> Option<BucketKeys> {
        let tag = stream.strip_suffix(":claims")?;
        (tag.starts_with("{c:") && tag.ends_with('}')).then(|| BucketKeys {
            tag: tag.to_string(),
        })
    }

    /// Hash: the bucket's rules and live counters. Fields: `kind` (`f` flash sale, `r`
    /// red packet), `limit`, `starts`, `ends` (unix ms), `remaining`, `claims`, `sold`,
    /// `cents`, `seq` (last claim sequence number of the bucket), `gen` (which load wrote
    /// it), `buckets` (how many the campaign has), `rolled_back`; with a payment window
    /// `window` (ms) and the order counts `pending`, `paid`, `expired`, `cancelled`,
    /// `refunds`. Its absence means the store has no live state for the bucket.
    pub fn state(&self) -> String {
        format!("{}:state", self.tag)
    }

    /// Hash: user id -> `held|claim id|quantity|amount|accepted ms|packet idx`.
    pub fn users(&self) -> String {
        format!("{}:users", self.tag)
    }

    /// List: the unclaimed red packets as `idx:amount`, popped from the left.
    pub fn packets(&self) -> String {
        format!("{}:packets", self.tag)
    }

    /// Stream: accepted claim events waiting to be persisted (acknowledged entries are
    /// deleted, so its length is the bucket's backlog).
    pub fn stream(&self) -> String {
        format!("{}:claims", self.tag)
    }

    /// Stream: claim events set aside because they could not be persisted (or read),
    /// with fields `e` (the event), `reason`, `entry` (its id in the claim stream), `at`.
    pub fn dead_letters(&self) -> String {
        format!("{}:dead", self.tag)
    }

    /// String: the reply of one claim batch, kept briefly so that the same batch re-sent
    /// by the client library is answered again instead of deciding twice.
    pub fn batch(&self, batch_id: &str) -> String {
        format!("{}:batch:{batch_id}", self.tag)
    }

    /// String: the answer of one dead-letter replay (`lua/replay.lua`), kept briefly.
    pub fn replay(&self, replay_id: &str) -> String {
        format!("{}:replay:{replay_id}", self.tag)
    }

    /// Stream: the behaviour events of the bucket's users waiting to be written (field
    /// `e`, see [`crate::behaviour::BehaviourEvent::encode`]; acknowledged entries are
    /// deleted). A bucketed campaign's events spread over its buckets' slots as its
    /// claims do: a user's go to their home bucket's stream.
    pub fn events(&self) -> String {
        format!("{}:events", self.tag)
    }

    /// Stream: the bucket's behaviour events set aside (as [`BucketKeys::dead_letters`]).
    pub fn event_dead_letters(&self) -> String {
        format!("{}:events:dead", self.tag)
    }

    /// String: the answer of one replay of the bucket's behaviour dead letters.
    pub fn event_replay(&self, replay_id: &str) -> String {
        format!("{}:events:replay:{replay_id}", self.tag)
    }

    /// Hash: load id -> the last chunk of red packets that load appended
    /// (`lua/load_packets.lua`), so a re-sent chunk is not appended twice.
    pub fn loading(&self) -> String {
        format!("{}:loading", self.tag)
    }

    /// Hash: transfer id -> `to bucket|units|at ms|gen|packets` of the units this bucket
    /// gave away and the receiver has not yet confirmed (`lua/transfer_out.lua`).
    pub fn transfers(&self) -> String {
        format!("{}:transfers", self.tag)
    }

    /// Hash: claim id -> the order's record (`status|pay by ms|user|quantity|closed ms|
    /// payment id`, see [`crate::order::Order::record`]) of every claim of a flash sale
    /// with a payment window whose home is this bucket.
    pub fn orders(&self) -> String {
        format!("{}:orders", self.tag)
    }

    /// Sorted set: the claim ids of the bucket's pending orders, scored by pay-by ms
    /// (the expiry sweep's index).
    pub fn deadlines(&self) -> String {
        format!("{}:deadlines", self.tag)
    }

    /// Hash: payment id -> `claim id|reason|amount|at ms` of the payments recorded for
    /// refund (once per payment id).
    pub fn refunds(&self) -> String {
        format!("{}:refunds", self.tag)
    }

    /// String: set when this bucket received the transfer (`lua/transfer_in.lua`), so a
    /// re-sent or late delivery adds nothing twice.
    pub fn received(&self, transfer_id: &str) -> String {
        format!("{}:received:{transfer_id}", self.tag)
    }
}

/// Bucket 0's (or an unbucketed campaign's) state hash; see [`BucketKeys::state`].
pub fn state(campaign_id: u64) -> String {
    BucketKeys::campaign(campaign_id).state()
}

pub fn users(campaign_id: u64) -> String {
    BucketKeys::campaign(campaign_id).users()
}

pub fn packets(campaign_id: u64) -> String {
    BucketKeys::campaign(campaign_id).packets()
}

pub fn stream(campaign_id: u64) -> String {
    BucketKeys::campaign(campaign_id).stream()
}

pub fn dead_letters(campaign_id: u64) -> String {
    BucketKeys::campaign(campaign_id).dead_letters()
}

pub fn batch(campaign_id: u64, batch_id: &str) -> String {
    BucketKeys::campaign(campaign_id).batch(batch_id)
}

pub fn replay(campaign_id: u64, replay_id: &str) -> String {
    BucketKeys::campaign(campaign_id).replay(replay_id)
}

pub fn loading(campaign_id: u64) -> String {
    BucketKeys::campaign(campaign_id).loading()
}

/// String: held while a rebuild of the campaign's live state runs (expires on its own).
pub fn rebuild_lock(campaign_id: u64) -> String {
    format!("{{c:{campaign_id}}}:rebuild")
}

/// The campaign id in a stream key (of any bucket).
pub fn stream_campaign(key: &str) -> Option<u64> {
    let rest = key.strip_prefix("{c:")?;
    let end = rest.find([':', '}'])?;
    rest[..end].parse().ok()
}

/// Stream: the behaviour events of an unbucketed campaign (of bucket 0 of a bucketed
/// one): [`BucketKeys::events`].
pub fn event_stream(campaign_id: u64) -> String {
    BucketKeys::campaign(campaign_id).events()
}

/// Stream: its behaviour events set aside ([`BucketKeys::event_dead_letters`]).
pub fn event_dead_letters(campaign_id: u64) -> String {
    BucketKeys::campaign(campaign_id).event_dead_letters()
}

/// The dead-letter stream of a behaviour event stream (a key made by
/// [`BucketKeys::events`], of any bucket).
pub fn event_dead_letters_of(stream: &str) -> Option<String> {
    let tag = stream.strip_suffix(":events")?;
    (tag.starts_with("{c:") && tag.ends_with('}')).then(|| format!("{stream}:dead"))
}

/// Hash: the campaign's live funnel, `<minute start, unix seconds>:<kind>` -> count
/// (see `crate::funnel`); expires [`crate::funnel::RETAIN_SECS`] after its last write.
pub fn funnel(campaign_id: u64) -> String {
    format!("{{c:{campaign_id}}}:funnel")
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

/// Set: the keys of every campaign's behaviour event stream (plain `SADD` by the api).
pub const EVENT_STREAMS: &str = "stampede:event_streams";

/// The consumer group the workers' behaviour event writers share.
pub const EVENT_GROUP: &str = "stampede-event-writers";

#[cfg(test)]
mod tests {
    #[test]
    fn stream_keys_round_trip() {
        assert_eq!(super::stream_campaign(&super::stream(17)), Some(17));
        let b = super::BucketKeys::new(17, 2, 3);
        assert_eq!(super::stream_campaign(&b.stream()), Some(17));
        assert_eq!(super::BucketKeys::of_stream(&b.stream()), Some(b));
        assert_eq!(super::stream_campaign("other"), None);
        let events = super::event_stream(17);
        assert_eq!(super::stream_campaign(&events), Some(17));
        assert_eq!(
            super::event_dead_letters_of(&events),
            Some(super::event_dead_letters(17))
        );
        assert_eq!(super::event_dead_letters_of(&super::stream(17)), None);
        assert_eq!(super::BucketKeys::of_stream(&events), None);
    }
}
