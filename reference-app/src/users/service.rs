//! The rules of accounts: who may read, rename, re-role and block whom, and
//! what else changes with it (sessions, the audit log, cached views).

use bff_auth::session::{RedisSessionStore, SessionStore};
use bff_rbac::Policy;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{UserError, UserRecord, ViewCache, store};
use crate::audit::{self, Entry};
use crate::identity::Role;
use crate::limits::LoginGuard;
use crate::messaging::DomainEvent;
use crate::messaging::outbox;
use crate::rbac;

/// Accounts, their sessions and their cached views.
#[derive(Debug, Clone)]
pub struct UserService {
    db: PgPool,
    sessions: RedisSessionStore,
    views: ViewCache,
    guard: LoginGuard,
}

/// Who acts on another account, and from where.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The caller's user id.
    pub id: Uuid,
    /// The roles and permissions.
    pub policy: &'a Policy,
    /// The caller's address, for the audit log.
    pub ip: Option<&'a str>,
}

/// The caller and the target of a role change or block, locked (in id order)
/// and read inside the transaction, so two admins acting on each other at once
/// queue, and every check sees the roles as they are, not as the token says.
struct Locked {
    actor_role: String,
    target: UserRecord,
}

impl UserService {
    /// The service over `db`, ending sessions in `sessions` and clearing
    /// login locks in `guard`.
    pub fn new(
        db: PgPool,
        sessions: RedisSessionStore,
        views: ViewCache,
        guard: LoginGuard,
    ) -> Self {
        Self {
            db,
            sessions,
            views,
            guard,
        }
    }

    /// The caller's own live account; a token whose account is gone is no
    /// longer valid.
    pub async fn me(&self, id: Uuid) -> Result<UserRecord, UserError> {
        crate::db::retry_once(|| store::find_by_id(&self.db, id))
            .await?
            .ok_or(UserError::AccountGone)
    }

    /// The live user `id`, if there is one.
    pub async fn find(&self, id: Uuid) -> Result<Option<UserRecord>, UserError> {
        Ok(crate::db::retry_once(|| store::find_by_id(&self.db, id)).await?)
    }

    /// Renames the caller's account (`name` already checked).
    pub async fn rename(&self, id: Uuid, name: &str) -> Result<UserRecord, UserError> {
        let user = store::set_name(&self.db, id, name)
            .await?
            .ok_or(UserError::AccountGone)?;
        self.views.user_changed(id).await;
        Ok(user)
    }

    /// Live users, newest first, after `after`, optionally of one role and
    /// matching `q`.
    pub async fn search(
        &self,
        role: Option<Role>,
        q: Option<&str>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<UserRecord>, UserError> {
        Ok(store::search(&self.db, role, q, after, limit).await?)
    }

    /// The live user `id`.
    pub async fn get(&self, id: Uuid) -> Result<UserRecord, UserError> {
        crate::db::retry_once(|| store::find_by_id(&self.db, id))
            .await?
            .ok_or(UserError::NotFound)
    }

    /// Gives user `target` the role `role`, and ends every session of theirs
    /// so no token keeps the old role.
    pub async fn set_role(
        &self,
        actor: Actor<'_>,
        target: Uuid,
        role: Role,
    ) -> Result<UserRecord, UserError> {
        let mut tx = crate::db::begin(&self.db).await?;
        let Locked { actor_role, target } = lock_pair(&mut tx, actor, target).await?;
        let (from, to) = (target.role().as_str(), role.as_str());
        if !actor.policy.can_grant(&actor_role, from, to) {
            return Err(UserError::GrantAbove);
        }
        // Sessions end before the change (so with Redis down nothing changes) and
        // after it (so none opened meanwhile keeps the old role in its tokens).
        let key = target.id.to_string();
        self.sessions.revoke_all(&key, None).await?;
        let user = store::set_role(&mut *tx, target.id, role)
            .await?
            .ok_or(UserError::NotFound)?;
        audit::record(
            &mut *tx,
            Entry {
                ip: actor.ip,
                ..Entry::new(Some(actor.id), "user.role_changed", "user", target.id)
                    .details(serde_json::json!({"from": from, "to": to}))
            },
        )
        .await?;
        outbox::event(&mut tx, &DomainEvent::sessions_revoked(&key, None)).await?;
        tx.commit().await?;
        // The committed change is made visible first; the revocation may fail.
        self.views.user_changed(user.id).await;
        self.sessions.revoke_all(&key, None).await?;
        Ok(user)
    }

    /// Blocks (ending every session) or unblocks user `target`.
    pub async fn set_blocked(
        &self,
        actor: Actor<'_>,
        target: Uuid,
        blocked: bool,
    ) -> Result<UserRecord, UserError> {
        let mut tx = crate::db::begin(&self.db).await?;
        let Locked { target, .. } = lock_pair(&mut tx, actor, target).await?;
        let key = target.id.to_string();
        if blocked {
            self.sessions.revoke_all(&key, None).await?;
        }
        let user = store::set_blocked(&mut *tx, target.id, blocked)
            .await?
            .ok_or(UserError::NotFound)?;
        let action = if blocked {
            "user.blocked"
        } else {
            "user.unblocked"
        };
        audit::record(
            &mut *tx,
            Entry {
                ip: actor.ip,
                ..Entry::new(Some(actor.id), action, "user", target.id)
            },
        )
        .await?;
        if blocked {
            outbox::event(&mut tx, &DomainEvent::user_blocked(&key)).await?;
        }
        tx.commit().await?;
        self.views.user_changed(user.id).await;
        if blocked {
            self.sessions.revoke_all(&key, None).await?;
        }
        Ok(user)
    }

    /// Clears every login lock and failure count of user `target`'s
    /// identifiers, from every client.
    pub async fn unlock_login(&self, actor: Actor<'_>, target: Uuid) -> Result<(), UserError> {
        let mut tx = crate::db::begin(&self.db).await?;
        let Locked { target, .. } = lock_pair(&mut tx, actor, target).await?;
        for identifier in target.identifiers() {
            self.guard.clear(identifier).await?;
        }
        audit::record(
            &mut *tx,
            Entry {
                ip: actor.ip,
                ..Entry::new(Some(actor.id), "auth.unlocked", "user", target.id)
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn lock_pair(
    conn: &mut PgConnection,
    actor: Actor<'_>,
    target: Uuid,
) -> Result<Locked, UserError> {
    if actor.id == target {
        return Err(UserError::OwnAccount);
    }
    let mut rows = store::lock_for_update(&mut *conn, &[actor.id, target]).await?;
    let me = rows.iter().find(|r| r.id == actor.id);
    let Some(me) = me.filter(|me| me.blocked_at.is_none()) else {
        // Blocked or deleted since the token was issued.
        return Err(UserError::AccountGone);
    };
    if !actor.policy.allows(&me.role, rbac::USERS_MANAGE) {
        return Err(UserError::RoleForbids);
    }
    let actor_role = me.role.clone();
    let Some(index) = rows.iter().position(|r| r.id == target) else {
        return Err(UserError::NotFound);
    };
    let target = rows.swap_remove(index);
    let role = target.role();
    if !actor
        .policy
        .can_grant(&actor_role, role.as_str(), role.as_str())
    {
        return Err(UserError::TargetAbove);
    }
    Ok(Locked { actor_role, target })
}
