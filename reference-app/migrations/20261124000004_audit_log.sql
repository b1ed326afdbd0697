-- Who did what to what, and when: admin actions, money movements and security
-- events. Rows are only ever inserted.
CREATE TABLE audit_log (
    id          uuid        PRIMARY KEY,  -- UUID v7: ordered by time
    actor_id    uuid,                     -- NULL: an anonymous caller or the system
    action      text        NOT NULL CHECK (action ~ '^[a-z_.]{1,64}$'),
    target_type text        CHECK (length(target_type) <= 32),
    target_id   text        CHECK (length(target_id) <= 64),
    request_id  text        CHECK (length(request_id) <= 200),
    ip          text        CHECK (length(ip) <= 64),
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_log_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
