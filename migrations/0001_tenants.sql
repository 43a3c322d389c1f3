-- Tenants, their API keys, and the audit trail of who changed what.

CREATE TABLE tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    -- SHA-256 of the whole key: keys carry 256 random bits, so a fast hash is enough,
    -- and the key itself is never stored.
    key_hash    bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    -- The first characters, so that an operator can tell keys apart in listings and logs.
    prefix      text NOT NULL,
    scopes      text[] NOT NULL CHECK (
                    cardinality(scopes) > 0
                    AND scopes <@ ARRAY['events:write', 'campaigns:write', 'read', 'players:token']
                ),
    -- Requests per second allowed for this key across all instances; NULL means no limit.
    rate_limit  integer CHECK (rate_limit > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    tenant_id   text,
    -- "admin" (operator token), "cli", or "key:<id>" for a tenant API key.
    actor       text NOT NULL,
    action      text NOT NULL,
    target      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_tenant_at ON audit_log (tenant_id, at);
