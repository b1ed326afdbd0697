-- Social login: accounts linked to external identities. An account made by
-- social login may have no password (and, when the provider gave no email, no
-- email or phone either); one with a password still needs an identifier.
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
ALTER TABLE users DROP CONSTRAINT users_check;
ALTER TABLE users ADD CONSTRAINT users_identifier_for_password
    CHECK (password_hash IS NULL OR email IS NOT NULL OR phone IS NOT NULL);

-- One row per (provider, subject): the provider's stable id of the person, never
-- the email. One identity per provider per account.
CREATE TABLE user_identities (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id),
    provider   text        NOT NULL CHECK (provider IN ('google', 'facebook', 'vk', 'yandex', 'oidc')),
    subject    text        NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    email      text        CHECK (length(email) <= 254),
    linked_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, subject),
    UNIQUE (user_id, provider)
);
