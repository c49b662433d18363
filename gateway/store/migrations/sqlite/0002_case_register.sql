-- The case register and the time-out ledger (SPEC §8; docs/decisions/0008-case-register.md).
--
-- Every change to the register runs in one transaction that starts by bumping
-- case_register.version: the row lock serialises register writes across replicas, so the
-- checks made inside (a compare-and-set on a case, overlapping time-outs, incompatible
-- purposes) cannot race, and a replica that sees version N has seen every change up to N.
-- Each changed case carries the version of its last change, so replicas reload only those.
CREATE TABLE case_register (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    version          BIGINT  NOT NULL,
    -- Identifies the key the household HMACs were made with (never the key itself): a replica
    -- with another key would misjudge every household, so it refuses to start.
    household_key_id TEXT
);
INSERT INTO case_register (id, version) VALUES (1, 0);

-- A case is named by `<owner>/<case id>`: each consumer has its own namespace of case ids,
-- so no consumer can learn whether another's case id exists, nor take one.
CREATE TABLE cases (
    case_key        TEXT    PRIMARY KEY,
    -- The consumer (case admin) that registered the case; only it reads or changes it.
    owner           TEXT    NOT NULL,
    -- 'purged': closed and past its retention; only the id and owner remain.
    status          TEXT    NOT NULL CHECK (status IN ('open', 'closed', 'purged')),
    -- JSON arrays of ids.
    purposes        TEXT    NOT NULL,
    objections      TEXT    NOT NULL,
    household_count INTEGER NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    closed_at       BIGINT,
    purge_after     BIGINT,
    version         BIGINT  NOT NULL
);
CREATE INDEX cases_version ON cases (version);
CREATE INDEX cases_purge_after ON cases (purge_after);

-- The partners the client agreed to involve, each with the moment it was first registered
-- (a time-out concerns only the partners involved when it started).
CREATE TABLE case_partners (
    case_key TEXT   NOT NULL,
    partner TEXT   NOT NULL,
    since   BIGINT NOT NULL,
    PRIMARY KEY (case_key, partner)
);

-- The household's members, only as keyed HMACs (hex) of their BSNs.
CREATE TABLE case_household (
    case_key      TEXT NOT NULL,
    subject_hmac TEXT NOT NULL,
    PRIMARY KEY (case_key, subject_hmac)
);
CREATE INDEX case_household_subject ON case_household (subject_hmac);

-- Motivated exceptions for a partner the client did not agree to (Wams MvT §3.3.2).
CREATE TABLE case_overrides (
    case_key    TEXT   NOT NULL,
    partner    TEXT   NOT NULL,
    reason     TEXT   NOT NULL,
    actor      TEXT   NOT NULL,
    -- JSON array of the approvers' pseudonymous ids.
    approvers  TEXT   NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (case_key, partner)
);

-- The purposes a case has been served under: what purpose-incompatible checks against.
CREATE TABLE case_purposes_served (
    case_key         TEXT   NOT NULL,
    purpose         TEXT   NOT NULL,
    first_served_at BIGINT NOT NULL,
    PRIMARY KEY (case_key, purpose)
);

-- The time-out ledger. A time-out is reserved ('pending') before it is sent to the partner,
-- so a concurrent request sees it, and 'granted' when the partner confirms; a refused or
-- failed one is deleted.
CREATE TABLE case_time_outs (
    id             TEXT   PRIMARY KEY,
    case_key        TEXT   NOT NULL,
    partner        TEXT   NOT NULL,
    -- JSON array of claim ids; empty: all the person's claims at the partner.
    claims         TEXT   NOT NULL,
    starts_on      TEXT   NOT NULL,
    ends_on        TEXT   NOT NULL,
    state          TEXT   NOT NULL CHECK (state IN ('pending', 'granted')),
    created_at     BIGINT NOT NULL,
    transaction_id TEXT   NOT NULL,
    -- The household member (keyed HMAC) the time-out is for: a new time-out is checked against
    -- the member's time-outs in every case of the same owner, not only this case's.
    subject        TEXT   NOT NULL
);
CREATE INDEX case_time_outs_case ON case_time_outs (case_key);
CREATE INDEX case_time_outs_subject ON case_time_outs (subject);
