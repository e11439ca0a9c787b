-- Orders and payment (README, "Orders and payment"). A flash sale with a payment window
-- turns each accepted claim into an order; NULL: claims are final.
ALTER TABLE campaigns ADD COLUMN payment_window_secs BIGINT;

-- One row per order, keyed by its claim. Written by the workers from the queue, in
-- whichever order a claim and its order's change arrive: the claim inserts the row as
-- pending_payment unless it is there; the change sets the final state unless one is set
-- (the store decides exactly one final state per order, so a redelivery writes the same).
CREATE TABLE orders (
    campaign_id  BIGINT NOT NULL,
    claim_id     TEXT   NOT NULL,
    user_id      TEXT   NOT NULL,
    quantity     BIGINT NOT NULL,
    status       TEXT   NOT NULL CHECK (status IN ('pending_payment', 'paid', 'expired', 'cancelled')),
    pay_by_ms    BIGINT NOT NULL,
    closed_at_ms BIGINT,
    payment_id   TEXT,
    PRIMARY KEY (campaign_id, claim_id)
);
CREATE INDEX orders_status ON orders (campaign_id, status);

-- The ledger of transitions: each order enters each state at most once.
CREATE TABLE order_transitions (
    campaign_id BIGINT NOT NULL,
    claim_id    TEXT   NOT NULL,
    status      TEXT   NOT NULL,
    at_ms       BIGINT NOT NULL,
    payment_id  TEXT,
    PRIMARY KEY (campaign_id, claim_id, status)
);

-- Payments that lost their order (expired, cancelled, or paid by another payment):
-- money to give back, once per payment.
CREATE TABLE refunds (
    payment_id     TEXT   NOT NULL PRIMARY KEY,
    campaign_id    BIGINT NOT NULL,
    claim_id       TEXT   NOT NULL,
    amount_cents   BIGINT NOT NULL,
    reason         TEXT   NOT NULL,
    recorded_at_ms BIGINT NOT NULL
);
