-- Audit records are never deleted or truncated by the gateway (there is no retention for the
-- central log yet). Deleting the end of a chain could otherwise go unnoticed; a table owner
-- can still drop these triggers, which is why the gateway's own database role should not own
-- the table (docs/deployment.md).
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_append_only();
