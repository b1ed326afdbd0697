//! The rules of owner-scoped records: transactions, owner and precondition
//! checks, restores and their audit record.

use sqlx::PgPool;
use uuid::Uuid;

use super::{Collection, RecordError, store};
use crate::audit::{self, Entry};
use crate::users::UserService;

/// Owner-scoped records of every [`Collection`].
#[derive(Debug, Clone)]
pub struct RecordService {
    db: PgPool,
    users: UserService,
}

impl RecordService {
    /// The service over `db`; `users` answers whether a user exists.
    pub fn new(db: PgPool, users: UserService) -> Self {
        Self { db, users }
    }

    /// `owner`'s live records in id order, after `after`, at most `limit`.
    pub async fn page<C: Collection>(
        &self,
        owner: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<C>, RecordError> {
        Ok(store::page(&self.db, owner, after, limit).await?)
    }

    /// Like [`Self::page`] for any user, who must exist (404 otherwise).
    pub async fn page_of_user<C: Collection>(
        &self,
        user: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<C>, RecordError> {
        let user = self.users.get(user).await?;
        self.page(user.id, after, limit).await
    }

    /// Creates a record of `owner`'s.
    pub async fn create<C: Collection>(
        &self,
        owner: Uuid,
        checked: &C::Checked,
    ) -> Result<C, RecordError> {
        let mut tx = crate::db::begin(&self.db).await?;
        let record = C::insert(&mut tx, owner, checked)
            .await
            .map_err(RecordError::on_unique(C::CONFLICT))?;
        tx.commit().await?;
        Ok(record)
    }

    /// `owner`'s live record `id`.
    pub async fn read<C: Collection>(&self, id: Uuid, owner: Uuid) -> Result<C, RecordError> {
        store::fetch(&self.db, id, Some(owner))
            .await?
            .ok_or(RecordError::NotFound)
    }

    /// Patches `owner`'s live record `id` if its version is one of
    /// `expected` (any version when `None`).
    pub async fn update<C: Collection>(
        &self,
        id: Uuid,
        owner: Uuid,
        expected: Option<&[i32]>,
        checked: &C::Checked,
    ) -> Result<C, RecordError> {
        let mut tx = crate::db::begin(&self.db).await?;
        if let Some(record) = C::update(&mut tx, id, owner, expected, checked)
            .await
            .map_err(RecordError::on_unique(C::CONFLICT))?
        {
            tx.commit().await?;
            return Ok(record);
        }
        // Nothing matched: either the record is not the caller's (404) or
        // its version moved on (412).
        let exists = store::fetch::<C>(&mut *tx, id, Some(owner))
            .await?
            .is_some();
        if exists && expected.is_some() {
            Err(RecordError::PreconditionFailed)
        } else {
            Err(RecordError::NotFound)
        }
    }

    /// Soft-deletes `owner`'s live record `id`.
    pub async fn delete<C: Collection>(&self, id: Uuid, owner: Uuid) -> Result<(), RecordError> {
        if store::soft_delete::<C>(&self.db, id, owner).await? {
            Ok(())
        } else {
            Err(RecordError::NotFound)
        }
    }

    /// Restores the deleted record `id` (anyone's), recording who did it;
    /// restoring a live record changes nothing and returns it.
    pub async fn restore<C: Collection>(
        &self,
        id: Uuid,
        actor: Option<Uuid>,
        ip: Option<&str>,
    ) -> Result<C, RecordError> {
        let mut tx = crate::db::begin(&self.db).await?;
        let restored = store::restore::<C>(&mut *tx, id)
            .await
            .map_err(RecordError::on_unique(
                "A live record now holds this one's unique value; delete or change it first.",
            ))?;
        let record = match restored {
            Some(record) => {
                audit::record(
                    &mut *tx,
                    Entry {
                        ip,
                        ..Entry::new(actor, "record.restored", C::KIND, id)
                    },
                )
                .await?;
                record
            }
            None => store::fetch::<C>(&mut *tx, id, None)
                .await?
                .ok_or(RecordError::NotFound)?,
        };
        tx.commit().await?;
        Ok(record)
    }
}
