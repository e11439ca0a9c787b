-- Claim tickets (a campaign may require one, handed out from ticket_lead_secs before
-- its start) and the blocklist of users and addresses.
ALTER TABLE campaigns ADD COLUMN ticket_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE campaigns ADD COLUMN ticket_lead_secs BIGINT NOT NULL DEFAULT 5;

-- One row per blocked subject: 'user:<id>' or 'ip:<address>'. expires_at_ms NULL:
-- blocked until lifted. Every api process reads the live rows into its own cache.
CREATE TABLE blocklist (
    subject       VARCHAR(128) NOT NULL PRIMARY KEY,
    expires_at_ms BIGINT,
    created_at_ms BIGINT       NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
