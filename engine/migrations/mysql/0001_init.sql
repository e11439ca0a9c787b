-- Campaigns and persisted claims, for MySQL 8 and MariaDB 10.11+. Instants are unix
-- milliseconds (BIGINT), as in the other two databases, so no DATETIME and no time zone
-- is ever involved. Every text is utf8mb4 and every id has a binary collation: ids
-- compare byte for byte, so 'U1' and 'u1' are two users, as they are in PostgreSQL and
-- SQLite. (sqlx reads a binary-collated column as bytes, so the engine casts ids to
-- CHAR where it selects them; texts that are no key, a campaign's kind and name, have
-- the ordinary utf8mb4_unicode_ci.)
CREATE TABLE campaigns (
    id             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind           VARCHAR(16)  COLLATE utf8mb4_unicode_ci NOT NULL CHECK (kind IN ('flash_sale', 'red_packet')),
    name           TEXT         COLLATE utf8mb4_unicode_ci NOT NULL,
    total          BIGINT       NOT NULL CHECK (total > 0),
    per_user_limit BIGINT       NOT NULL,
    price_cents    BIGINT       NOT NULL,
    total_cents    BIGINT       NOT NULL,
    min_cents      BIGINT       NOT NULL,
    split_seed     BIGINT       NOT NULL,
    starts_at_ms   BIGINT       NOT NULL,
    ends_at_ms     BIGINT       NOT NULL,
    created_at_ms  BIGINT       NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Keyed by campaign first, so the table partitions (or shards) by campaign. Ids are at
-- most 64 characters (the engine refuses longer ones before they get here).
-- No foreign key to campaigns: the writers only ever insert claims of campaigns
-- they read from the store, and a per-row check would cost the batched inserts.
CREATE TABLE claims (
    campaign_id     BIGINT      NOT NULL,
    claim_id        VARCHAR(64) NOT NULL,
    user_id         VARCHAR(64) NOT NULL,
    quantity        BIGINT      NOT NULL,
    amount_cents    BIGINT      NOT NULL,
    packet_idx      BIGINT      NOT NULL,
    accepted_at_ms  BIGINT      NOT NULL,
    persisted_at_ms BIGINT      NOT NULL,
    -- MySQL has no partial index: the packet index of a red packet's claim, NULL for a
    -- flash sale's (packet_idx -1), and a unique key allows any number of NULLs.
    packet_key      BIGINT AS (IF(packet_idx >= 0, packet_idx, NULL)) VIRTUAL,
    PRIMARY KEY (campaign_id, claim_id),
    -- A red packet is handed out at most once, whatever the queue redelivers.
    UNIQUE KEY claims_packet (campaign_id, packet_key),
    -- "My claims", newest first.
    KEY claims_user (user_id, accepted_at_ms, claim_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
