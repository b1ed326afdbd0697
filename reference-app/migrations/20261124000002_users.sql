-- Accounts. An account has an email, a phone, or both; each is unique among live
-- (not soft-deleted) accounts, so a deleted account's address can be reused.
CREATE TABLE users (
    id                uuid        PRIMARY KEY,
    email             text        CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    phone             text        CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    name              text        NOT NULL DEFAULT '' CHECK (length(name) <= 100),
    role              text        NOT NULL DEFAULT 'customer' CHECK (role IN ('admin', 'manager', 'customer')),
    password_hash     text        NOT NULL,
    email_verified_at timestamptz,
    phone_verified_at timestamptz,
    blocked_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,
    CHECK (email IS NOT NULL OR phone IS NOT NULL)
);

CREATE UNIQUE INDEX users_email_live ON users (email) WHERE deleted_at IS NULL AND email IS NOT NULL;
CREATE UNIQUE INDEX users_phone_live ON users (phone) WHERE deleted_at IS NULL AND phone IS NOT NULL;
