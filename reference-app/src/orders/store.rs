//! The orders service's tables. Every query names the owner, so another user's
//! order is never read or changed: it is simply not found.

use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tracing::instrument;
use uuid::Uuid;

use crate::messaging::DomainEvent;
use crate::messaging::outbox;

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Item {
    /// Stock keeping unit.
    pub sku: String,
    /// How many.
    pub quantity: i32,
    /// Price of one, at the currency's scale.
    pub unit_price: Decimal,
}

/// An order as stored.
#[derive(Debug, Clone)]
pub struct OrderRecord {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// `created` or `cancelled`.
    pub status: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Sum of the items.
    pub total: Decimal,
    /// The currency's decimal places.
    pub minor_units: u32,
    /// When it was placed.
    pub created_at: OffsetDateTime,
    /// Its lines, in order.
    pub items: Vec<Item>,
}

/// A validated order to place.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// ISO 4217 code.
    pub currency: String,
    /// The currency's decimal places.
    pub minor_units: u32,
    /// Its lines (1 to 100).
    pub items: Vec<Item>,
    /// Sum of quantity × unit price.
    pub total: Decimal,
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    user_id: Uuid,
    status: String,
    currency: String,
    total: Decimal,
    minor_units: i16,
    created_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    order_id: Uuid,
    sku: String,
    quantity: i32,
    unit_price: Decimal,
}

const ORDER_COLUMNS: &str = "id, user_id, status, currency, total, minor_units, created_at";

/// What placing an order came to.
#[derive(Debug)]
pub enum Placed {
    /// A new order.
    New(OrderRecord),
    /// The order first placed with this idempotency key and the same content.
    Replayed(OrderRecord),
    /// The idempotency key was used for a different order.
    KeyReused,
}

/// A client's idempotency key and the hash of the order it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The key, 1 to 255 visible ASCII characters.
    pub key: String,
    /// SHA-256 of the order's canonical form.
    pub hash: Vec<u8>,
}

/// Places `order` for `user_id` and writes `events.order.created` to the outbox,
/// in one transaction. With an idempotency key already used by this user, the
/// first order is returned (same content) or nothing is placed (other content).
#[instrument(name = "orders.create", skip_all, fields(db.system.name = "postgresql"))]
pub async fn create(
    db: &PgPool,
    user_id: Uuid,
    order: NewOrder,
    idempotency: Option<&Idempotency>,
) -> Result<Placed, sqlx::Error> {
    let id = Uuid::now_v7();
    let mut tx = crate::db::begin(db).await?;
    // A concurrent insert with the same key waits here for the other to commit,
    // then conflicts: exactly one order per key.
    let row: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO orders (id, user_id, currency, total, minor_units, idempotency_key, request_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (user_id, idempotency_key) DO NOTHING
         RETURNING {ORDER_COLUMNS}"
    )))
    .bind(id)
    .bind(user_id)
    .bind(&order.currency)
    .bind(order.total)
    .bind(i16::try_from(order.minor_units).unwrap_or(4))
    .bind(idempotency.map(|i| i.key.as_str()))
    .bind(idempotency.map(|i| i.hash.as_slice()))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return replay(db, user_id, idempotency).await;
    };
    let positions: Vec<i16> = (0..order.items.len())
        .map(|i| i16::try_from(i).unwrap_or(i16::MAX))
        .collect();
    let skus: Vec<&str> = order.items.iter().map(|i| i.sku.as_str()).collect();
    let quantities: Vec<i32> = order.items.iter().map(|i| i.quantity).collect();
    let prices: Vec<Decimal> = order.items.iter().map(|i| i.unit_price).collect();
    sqlx::query(
        "INSERT INTO order_items (order_id, position, sku, quantity, unit_price)
         SELECT $1, * FROM unnest($2::smallint[], $3::text[], $4::int[], $5::numeric[])",
    )
    .bind(id)
    .bind(&positions)
    .bind(&skus)
    .bind(&quantities)
    .bind(&prices)
    .execute(&mut *tx)
    .await?;
    let record = record(row, order.items);
    announce(&mut tx, "order.created", &record).await?;
    tx.commit().await?;
    Ok(Placed::New(record))
}

/// The order an idempotency key was first used for, if it matches.
#[instrument(name = "orders.replay", skip_all, fields(db.system.name = "postgresql"))]
async fn replay(
    db: &PgPool,
    user_id: Uuid,
    idempotency: Option<&Idempotency>,
) -> Result<Placed, sqlx::Error> {
    let Some(idempotency) = idempotency else {
        // Without a key there is no conflict to lose; the insert cannot skip.
        return Err(sqlx::Error::RowNotFound);
    };
    let first: Option<(Uuid, Vec<u8>)> = sqlx::query_as(
        "SELECT id, request_hash FROM orders WHERE user_id = $1 AND idempotency_key = $2",
    )
    .bind(user_id)
    .bind(&idempotency.key)
    .fetch_optional(db)
    .await?;
    match first {
        Some((id, hash)) if hash == idempotency.hash => match get(db, user_id, id).await? {
            Some(order) => Ok(Placed::Replayed(order)),
            None => Err(sqlx::Error::RowNotFound),
        },
        Some(_) => Ok(Placed::KeyReused),
        None => Err(sqlx::Error::RowNotFound),
    }
}

/// `user_id`'s order `id`, if it exists and is theirs.
#[instrument(name = "orders.get", skip_all, fields(db.system.name = "postgresql"))]
pub async fn get(db: &PgPool, user_id: Uuid, id: Uuid) -> Result<Option<OrderRecord>, sqlx::Error> {
    let row: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND user_id = $2"
    )))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await?;
    match row {
        Some(row) => Ok(with_items(db, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

/// Up to `fetch` of `user_id`'s orders, newest first, after the order `after`.
#[instrument(name = "orders.list", skip_all, fields(db.system.name = "postgresql"))]
pub async fn list(
    db: &PgPool,
    user_id: Uuid,
    after: Option<Uuid>,
    fetch: i64,
) -> Result<Vec<OrderRecord>, sqlx::Error> {
    let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders
         WHERE user_id = $1 AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3"
    )))
    .bind(user_id)
    .bind(after)
    .bind(fetch)
    .fetch_all(db)
    .await?;
    with_items(db, rows).await
}

/// Cancels `user_id`'s order `id` and writes `events.order.cancelled`; an order
/// already cancelled is returned as it is, with no second event.
#[instrument(name = "orders.cancel", skip_all, fields(db.system.name = "postgresql"))]
pub async fn cancel(
    db: &PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    let mut tx = crate::db::begin(db).await?;
    let cancelled: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE orders SET status = 'cancelled', cancelled_at = now()
         WHERE id = $1 AND user_id = $2 AND status = 'created'
         RETURNING {ORDER_COLUMNS}"
    )))
    .bind(id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = cancelled else {
        tx.rollback().await?;
        // Not theirs, missing, or cancelled already: the read tells which.
        return get(db, user_id, id).await;
    };
    let items = items_of(&mut tx, &[row.id]).await?;
    let record = record(row, items.into_iter().map(|(_, item)| item).collect());
    announce(&mut tx, "order.cancelled", &record).await?;
    tx.commit().await?;
    Ok(Some(record))
}

/// The scale of `currency` if the service accepts it.
#[instrument(name = "orders.currency_scale", skip_all, fields(db.system.name = "postgresql"))]
pub async fn currency_scale(db: &PgPool, currency: &str) -> Result<Option<u32>, sqlx::Error> {
    let scale: Option<i16> =
        sqlx::query_scalar("SELECT minor_units FROM currencies WHERE code = $1")
            .bind(currency)
            .fetch_optional(db)
            .await?;
    Ok(scale.and_then(|s| u32::try_from(s).ok()))
}

/// Loyalty points of `user_id`: for every order not cancelled, its total
/// (computed here from the validated lines) in whole points of its currency's
/// rate (`currencies.units_per_point`, about a euro's worth), rounded down.
#[instrument(name = "orders.points", skip_all, fields(db.system.name = "postgresql"))]
pub async fn points(db: &PgPool, user_id: Uuid) -> Result<i64, sqlx::Error> {
    // Each total is below 10^15, but enough orders could still pass i64's range:
    // the sum is capped there rather than failing the user's every lookup.
    sqlx::query_scalar(
        "SELECT LEAST(COALESCE(sum(floor(o.total / c.units_per_point)), 0), 9223372036854775807)::bigint
         FROM orders o JOIN currencies c ON c.code = o.currency
         WHERE o.user_id = $1 AND o.status = 'created'",
    )
    .bind(user_id)
    .fetch_one(db)
    .await
}

#[instrument(name = "orders.announce", skip_all, fields(db.system.name = "postgresql"))]
async fn announce(
    conn: &mut PgConnection,
    kind: &str,
    order: &OrderRecord,
) -> Result<(), sqlx::Error> {
    let event = DomainEvent::new(
        kind,
        serde_json::json!({
            "order_id": order.id,
            "user_id": order.user_id,
            "currency": order.currency,
            "total": crate::money::format(order.total, order.minor_units),
            "items": order.items.len(),
        }),
    );
    outbox::event(conn, &event).await
}

fn record(row: OrderRow, items: Vec<Item>) -> OrderRecord {
    OrderRecord {
        id: row.id,
        user_id: row.user_id,
        status: row.status,
        currency: row.currency,
        total: row.total,
        minor_units: u32::try_from(row.minor_units).unwrap_or(0),
        created_at: row.created_at,
        items,
    }
}

#[instrument(name = "orders.items_of", skip_all, fields(db.system.name = "postgresql"))]
async fn items_of(
    conn: &mut PgConnection,
    orders: &[Uuid],
) -> Result<Vec<(Uuid, Item)>, sqlx::Error> {
    let rows: Vec<ItemRow> = sqlx::query_as(
        "SELECT order_id, sku, quantity, unit_price FROM order_items
         WHERE order_id = ANY($1) ORDER BY order_id, position",
    )
    .bind(orders)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.order_id,
                Item {
                    sku: r.sku,
                    quantity: r.quantity,
                    unit_price: r.unit_price,
                },
            )
        })
        .collect())
}

/// Attaches the items of `rows` with one query.
async fn with_items(db: &PgPool, rows: Vec<OrderRow>) -> Result<Vec<OrderRecord>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut conn = db.acquire().await?;
    let mut items: std::collections::HashMap<Uuid, Vec<Item>> = std::collections::HashMap::new();
    // Rows come in position order, so each order's lines stay in order.
    for (order, item) in items_of(&mut conn, &ids).await? {
        items.entry(order).or_default().push(item);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let mine = items.remove(&row.id).unwrap_or_default();
            record(row, mine)
        })
        .collect())
}
