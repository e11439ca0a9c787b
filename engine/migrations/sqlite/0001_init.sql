-- Campaigns and persisted claims. Instants are unix milliseconds (BIGINT) in both
-- databases, so the same rows and queries serve PostgreSQL and SQLite.
CREATE TABLE campaigns (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT   NOT NULL CHECK (kind IN ('flash_sale', 'red_packet')),
    name           TEXT   NOT NULL,
    total          BIGINT NOT NULL CHECK (total > 0),
    per_user_limit BIGINT NOT NULL,
    price_cents    BIGINT NOT NULL,
    total_cents    BIGINT NOT NULL,
    min_cents      BIGINT NOT NULL,
    split_seed     BIGINT NOT NULL,
    starts_at_ms   BIGINT NOT NULL,
    ends_at_ms     BIGINT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);

-- Keyed by campaign first, so the table partitions (or shards) by campaign.
-- No foreign key to campaigns: the writers only ever insert claims of campaigns
-- they read from the store, and a per-row check would cost the batched inserts.
CREATE TABLE claims (
    campaign_id     BIGINT NOT NULL,
    claim_id        TEXT   NOT NULL,
    user_id         TEXT   NOT NULL,
    quantity        BIGINT NOT NULL,
    amount_cents    BIGINT NOT NULL,
    packet_idx      BIGINT NOT NULL,
    accepted_at_ms  BIGINT NOT NULL,
    persisted_at_ms BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, claim_id)
);

-- A red packet is handed out at most once, whatever the queue redelivers.
CREATE UNIQUE INDEX claims_packet ON claims (campaign_id, packet_idx) WHERE packet_idx >= 0;
-- "My claims", newest first.
CREATE INDEX claims_user ON claims (user_id, accepted_at_ms DESC, claim_id DESC);
