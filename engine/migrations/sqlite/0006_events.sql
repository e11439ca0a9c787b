-- Behaviour events (README, "Behaviour events and the funnel"). SQLite has no
-- partitioning: one table with the day column (the UTC day as the integer YYYYMMDD),
-- and retention deletes past days. (day, id) is the key, as on the other databases.
CREATE TABLE events (
    id             TEXT    NOT NULL,
    day            INTEGER NOT NULL,
    campaign_id    BIGINT  NOT NULL,
    user_id        TEXT    NOT NULL,
    type           TEXT    NOT NULL,
    at_ms          BIGINT  NOT NULL,
    props          TEXT,
    received_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (day, id)
);
CREATE INDEX events_campaign_at ON events (campaign_id, at_ms);

-- Per-minute counts per campaign and event type, kept by the event writers (see the
-- PostgreSQL migration).
CREATE TABLE event_minutes (
    campaign_id BIGINT NOT NULL,
    minute_ms   BIGINT NOT NULL,
    type        TEXT   NOT NULL,
    events      BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, minute_ms, type)
);
