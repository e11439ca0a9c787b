-- Behaviour events (README, "Behaviour events and the funnel"): one table with the
-- event's UTC day as the integer YYYYMMDD, and retention deletes the old days in
-- chunks (engine/src/db/events.rs). PostgreSQL partitions the same table by day; here
-- the day leads the key, so a day's rows sit together and go together. (day, id) is
-- as unique as the id: an event's day never changes. Ids keep a binary collation, as
-- the claims' do.
CREATE TABLE events (
    id             VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    day            INT         NOT NULL,
    campaign_id    BIGINT      NOT NULL,
    user_id        VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    type           VARCHAR(32) NOT NULL,
    at_ms          BIGINT      NOT NULL,
    props          TEXT        NULL,
    received_at_ms BIGINT      NOT NULL,
    PRIMARY KEY (day, id),
    INDEX events_campaign_at (campaign_id, at_ms)
);

-- Per-minute counts per campaign and event type, kept by the event writers in the same
-- transaction as the rows they count: the funnel reads these, never the raw table.
CREATE TABLE event_minutes (
    campaign_id BIGINT      NOT NULL,
    minute_ms   BIGINT      NOT NULL,
    type        VARCHAR(32) NOT NULL,
    events      BIGINT      NOT NULL,
    PRIMARY KEY (campaign_id, minute_ms, type)
);
