-- Behaviour events (README, "Behaviour events and the funnel"): one table partitioned by
-- UTC day with PostgreSQL's declarative partitioning. `day` is the event's UTC day as
-- the integer YYYYMMDD; each day's partition, `events_YYYYMMDD`, holds
-- FROM (day) TO (day + 1) and is made ahead by the workers (engine/src/db/events.rs),
-- and dropped whole past STAMPEDE_EVENTS_RETENTION_DAYS. The primary key carries the
-- partition key, as PostgreSQL requires; an event's day follows from its `at_ms`, which
-- never changes, so (day, id) is as unique as the id: a redelivered event is skipped.
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
) PARTITION BY RANGE (day);
CREATE INDEX events_campaign_at ON events (campaign_id, at_ms);

-- Per-minute counts per campaign and event type, kept by the event writers in the same
-- transaction as the rows they count (only rows new to `events` are counted): the
-- funnel reads these, never the raw table.
CREATE TABLE event_minutes (
    campaign_id BIGINT NOT NULL,
    minute_ms   BIGINT NOT NULL,
    type        TEXT   NOT NULL,
    events      BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, minute_ms, type)
);
