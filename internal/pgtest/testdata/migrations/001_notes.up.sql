-- A tenant-scoped table shaped like the library's own, used to prove that
-- the roles the helper hands out are bound (or not) by row-level security.
CREATE TABLE notes (
	tenant_id uuid   NOT NULL,
	id        bigint GENERATED ALWAYS AS IDENTITY,
	body      text   NOT NULL,
	PRIMARY KEY (tenant_id, id)
);

ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes FORCE ROW LEVEL SECURITY;

CREATE POLICY notes_tenant_isolation ON notes
	USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
	WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
