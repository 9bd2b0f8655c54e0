-- Plans are reference data shared by every tenant, so the table has no
-- tenant_id and no row-level security. Internal plans (pilots) are kept
-- here too, hidden from the public list by public = false.
CREATE TABLE plans (
    id             text    PRIMARY KEY CHECK (id ~ '^[a-z0-9_]{1,40}$'),
    name           text    NOT NULL,
    description    text    NOT NULL DEFAULT '',
    price_halalas  bigint  NOT NULL CHECK (price_halalas >= 0),
    currency       text    NOT NULL DEFAULT 'SAR' CHECK (currency ~ '^[A-Z]{3}$'),
    billing_period text    NOT NULL DEFAULT 'month' CHECK (billing_period IN ('month', 'once')),
    seats          integer NOT NULL CHECK (seats > 0),
    features       text[]  NOT NULL DEFAULT '{}',
    public         boolean NOT NULL,
    sort_order     integer NOT NULL DEFAULT 0
);

INSERT INTO plans (id, name, description, price_halalas, billing_period, seats, features, public, sort_order) VALUES
    ('starter', 'Starter', 'For a founder selling on their own.', 49900, 'month', 2,
        ARRAY['leads', 'pipeline', 'email outbound'], true, 10),
    ('growth', 'Growth', 'For a sales team with a steady pipeline.', 149900, 'month', 10,
        ARRAY['leads', 'pipeline', 'email outbound', 'approvals', 'webhooks'], true, 20),
    ('scale', 'Scale', 'For several teams, with audit and priority support.', 399900, 'month', 50,
        ARRAY['leads', 'pipeline', 'email outbound', 'approvals', 'webhooks', 'audit export', 'priority support'], true, 30),
    ('pilot_1sar', 'Pilot', 'Internal: a 1 SAR payment to prove the checkout path.', 100, 'once', 1,
        ARRAY['leads'], false, 90);
