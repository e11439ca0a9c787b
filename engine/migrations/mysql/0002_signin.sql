-- Daily sign-in and points. A day is the calendar day in the configured zone, as
-- 'YYYY-MM-DD' text (sorts by date, same in every database).

-- One row per user and day: the unique key that makes an award happen once.
CREATE TABLE signins (
    user_id      VARCHAR(64) NOT NULL,
    -- Digits and dashes only: any collation compares them exactly; this one reads as text.
    day          CHAR(10)    CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    streak       BIGINT      NOT NULL,
    points       BIGINT      NOT NULL,
    signed_at_ms BIGINT      NOT NULL,
    PRIMARY KEY (user_id, day)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Every change of a balance, with why; unique per user and reason ('signin:2026-11-22').
CREATE TABLE points_ledger (
    user_id       VARCHAR(64)  NOT NULL,
    reason        VARCHAR(128) NOT NULL,
    delta         BIGINT       NOT NULL,
    created_at_ms BIGINT       NOT NULL,
    PRIMARY KEY (user_id, reason)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The running balance: the sum of the user's ledger, kept in the same transaction.
CREATE TABLE points_balances (
    user_id VARCHAR(64) NOT NULL PRIMARY KEY,
    balance BIGINT      NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
