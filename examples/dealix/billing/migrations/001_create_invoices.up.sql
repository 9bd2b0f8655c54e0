-- Invoices of plan checkouts. Tenant-scoped under row-level security; the
-- policy is applied by billing.Migrate through rlspolicy.Apply.
CREATE TABLE invoices (
    tenant_id           uuid        NOT NULL,
    id                  uuid        NOT NULL DEFAULT gen_random_uuid(),
    plan                text        NOT NULL REFERENCES plans (id),
    amount_halalas      bigint      NOT NULL CHECK (amount_halalas >= 0),
    currency            text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- initiated: created at the provider, waiting for the payer;
    -- paid: a verified payment event arrived (final);
    -- failed: a verified failure arrived before any payment.
    status              text        NOT NULL DEFAULT 'initiated'
                                    CHECK (status IN ('initiated', 'paid', 'failed')),
    provider            text        NOT NULL CHECK (length(provider) BETWEEN 1 AND 40),
    provider_invoice_id text        CHECK (length(provider_invoice_id) <= 200),
    payment_url         text        CHECK (length(payment_url) <= 2000),
    payment_id          text        CHECK (length(payment_id) <= 200),
    failure_reason      text        CHECK (length(failure_reason) <= 500),
    paid_at             timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- The webhook worker finds an invoice by the provider's id.
CREATE UNIQUE INDEX invoices_tenant_provider_id ON invoices (tenant_id, provider, provider_invoice_id);
CREATE INDEX invoices_tenant_created ON invoices (tenant_id, created_at DESC);
