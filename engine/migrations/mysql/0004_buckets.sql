-- Bucketed hot campaigns: how many buckets (hash tags, so cluster shards) the campaign's
-- live state is spread over in the store. Fixed at creation; 1 for every older campaign.
ALTER TABLE campaigns ADD COLUMN buckets BIGINT NOT NULL DEFAULT 1;
