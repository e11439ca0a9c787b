-- Orders and payment (README, "Orders and payment"). A flash sale with a payment window
-- turns each accepted claim into an order; NULL: claims are final.
ALTER TABLE campaigns ADD COLUMN payment_window_secs BIGINT NULL;

-- One row per order, keyed by its claim. Written by the workers from the queue, in
-- whichever order a claim and its order's change arrive: the claim inserts the row as
-- pending_payment unless it is there; the change sets the final state unless one is set
-- (the store decides exactly one final state per order, so a redelivery writes the same).
-- Ids have a binary collation, as in 0001_init.sql.
CREATE TABLE orders (
    campaign_id  BIGINT      NOT NULL,
    claim_id     VARCHAR(64) NOT NULL,
    user_id      VARCHAR(64) NOT NULL,
    quantity     BIGINT      NOT NULL,
    status       VARCHAR(16) NOT NULL CHECK (status IN ('pending_payment', 'paid', 'expired', 'cancelled')),
    pay_by_ms    BIGINT      NOT NULL,
    closed_at_ms BIGINT      NULL,
    payment_id   VARCHAR(64) NULL,
    PRIMARY KEY (campaign_id, claim_id),
    KEY orders_status (campaign_id, status)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The ledger of transitions: each order enters each state at most once.
CREATE TABLE order_transitions (
    campaign_id BIGINT      NOT NULL,
    claim_id    VARCHAR(64) NOT NULL,
    status      VARCHAR(16) NOT NULL,
    at_ms       BIGINT      NOT NULL,
    payment_id  VARCHAR(64) NULL,
    PRIMARY KEY (campaign_id, claim_id, status)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Payments that lost their order (expired, cancelled, or paid by another payment):
-- money to give back, once per payment.
CREATE TABLE refunds (
    payment_id     VARCHAR(64) NOT NULL PRIMARY KEY,
    campaign_id    BIGINT      NOT NULL,
    claim_id       VARCHAR(64) NOT NULL,
    amount_cents   BIGINT      NOT NULL,
    reason         VARCHAR(32) NOT NULL,
    recorded_at_ms BIGINT      NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
