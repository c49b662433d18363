-- Four-eyes approvals already used (SPEC §9). An approval serves one exchange: the primary key
-- makes the spend atomic (INSERT … ON CONFLICT DO NOTHING; one row affected = this exchange
-- got it). Rows are kept until the approval's exp plus the token leeway, then pruned.
CREATE TABLE spent_approvals (
    issuer     TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    -- The approval token's exp (unix seconds).
    expires_at BIGINT  NOT NULL,
    spent_at   BIGINT  NOT NULL,
    -- The replica that admitted the exchange.
    instance   TEXT    NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX spent_approvals_expiry ON spent_approvals (expires_at);
