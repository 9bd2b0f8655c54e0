-- A decision whose hook failed is rolled back, but the attempt is kept in
-- the audit trail with the hook's error.
ALTER TABLE approvals_audit DROP CONSTRAINT approvals_audit_result_check;
ALTER TABLE approvals_audit ADD CONSTRAINT approvals_audit_result_check
    CHECK (result IN ('accepted', 'replayed', 'conflict', 'expired', 'self_approval', 'not_found', 'hook_failed'));
ALTER TABLE approvals_audit ADD COLUMN error text NOT NULL DEFAULT '';
