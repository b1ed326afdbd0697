-- Owner-scoped records with soft delete: a deleted row keeps its data and gets
-- deleted_at; every read and every uniqueness rule looks at live rows only
-- (partial indexes). `version` grows with each write and is the ETag.
CREATE TABLE addresses (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id),
    label       text        NOT NULL CHECK (length(label) BETWEEN 1 AND 50),
    country     text        NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    city        text        NOT NULL CHECK (length(city) BETWEEN 1 AND 100),
    street      text        NOT NULL CHECK (length(street) BETWEEN 1 AND 200),
    postal_code text        NOT NULL CHECK (length(postal_code) BETWEEN 1 AND 20),
    is_default  boolean     NOT NULL DEFAULT false,
    version     integer     NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

CREATE INDEX addresses_owner_live ON addresses (user_id, id) WHERE deleted_at IS NULL;
-- One default address per user, among live ones.
CREATE UNIQUE INDEX addresses_one_default ON addresses (user_id) WHERE is_default AND deleted_at IS NULL;

CREATE TABLE wishlist_items (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id),
    sku         text        NOT NULL CHECK (sku ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    note        text        NOT NULL DEFAULT '' CHECK (length(note) <= 500),
    priority    smallint    NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 5),
    version     integer     NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

CREATE INDEX wishlist_owner_live ON wishlist_items (user_id, id) WHERE deleted_at IS NULL;
-- A SKU once per user's live wishlist.
CREATE UNIQUE INDEX wishlist_one_per_sku ON wishlist_items (user_id, sku) WHERE deleted_at IS NULL;
