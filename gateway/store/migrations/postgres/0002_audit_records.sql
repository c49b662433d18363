-- The central audit log (`audit: {sink: postgres}`, SPEC §9). One hash chain per instance:
-- (instance, seq) is the key, so two processes that claim the same instance id cannot fork
-- its chain (the second one's commit fails and its exchanges are refused).
--
-- `record` is the canonical JSON line exactly as it was hashed; the other columns repeat what
-- a query filters on, so `audit query --store` does not scan every record of every instance.
CREATE TABLE audit_records (
    instance             TEXT        NOT NULL,
    seq                  BIGINT      NOT NULL,
    prev_hash            TEXT        NOT NULL,
    hash                 TEXT        NOT NULL,
    -- dpl.core.data_subject_id and doelpoort.requested_subject_id (keyed HMACs, never BSNs).
    subject_id           TEXT,
    requested_subject_id TEXT,
    start_time           TEXT        NOT NULL,
    record               TEXT        NOT NULL,
    written_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (instance, seq)
);
CREATE INDEX audit_records_subject ON audit_records (subject_id) WHERE subject_id IS NOT NULL;
CREATE INDEX audit_records_requested_subject ON audit_records (requested_subject_id)
    WHERE requested_subject_id IS NOT NULL;

-- Append-only: a record is never changed in place. (A database superuser can still drop the
-- trigger; the hash chain is what makes such a change visible to `audit verify`.)
CREATE FUNCTION audit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only';
END;
$$;
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();

-- One row per instance writing here: the subject key its records were written with (by id,
-- never the key), like manifest.json beside a file log. A replica started with another key is
-- refused: its records would be invisible to a citizen's query.
CREATE TABLE audit_instances (
    instance         TEXT        PRIMARY KEY,
    subject_key_id   TEXT        NOT NULL,
    subject_key_file TEXT        NOT NULL,
    first_seen       TIMESTAMPTZ NOT NULL DEFAULT now()
);
