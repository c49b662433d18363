-- Four-eyes approvals already used (SPEC §9). An approval serves one exchange: the primary key
-- makes the spend atomic (INSERT … ON CONFLICT DO NOTHING; one row affected = this exchange
-- got it). Rows are kept until a day after the approval's exp (far beyond any leeway or
-- clock skew between replicas), then pruned.
CREATE TABLE spent_approvals (
    issuer     TEXT    NOT NULL,
    -- SHA-256 (hex) of the token's jti: the caller's text is not stored.
    jti        TEXT    NOT NULL,
    -- Until when the row is kept: the approval token's exp plus a day (unix seconds).
    expires_at BIGINT  NOT NULL,
    spent_at   BIGINT  NOT NULL,
    -- The replica that admitted the exchange.
    instance   TEXT    NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX spent_approvals_expiry ON spent_approvals (expires_at);
