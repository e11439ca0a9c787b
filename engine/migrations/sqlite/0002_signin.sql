-- Daily sign-in and points. A day is the calendar day in the configured zone, as
-- 'YYYY-MM-DD' text (sorts by date, same in both databases).

-- One row per user and day: the unique key that makes an award happen once.
CREATE TABLE signins (
    user_id      TEXT   NOT NULL,
    day          TEXT   NOT NULL,
    streak       BIGINT NOT NULL,
    points       BIGINT NOT NULL,
    signed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, day)
);

-- Every change of a balance, with why; unique per user and reason ('signin:2026-11-22').
CREATE TABLE points_ledger (
    user_id       TEXT   NOT NULL,
    reason        TEXT   NOT NULL,
    delta         BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, reason)
);

-- The running balance: the sum of the user's ledger, kept in the same transaction.
CREATE TABLE points_balances (
    user_id TEXT   PRIMARY KEY,
    balance BIGINT NOT NULL
);
