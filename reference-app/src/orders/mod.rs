//! Orders: the separate orders service (gRPC, its own schema and outbox), the
//! loyalty responder beside it, and the BFF's side of both.
//!
//! - [`server`]: `bff orders`, or in-process under `serve` when no orders URL is set.
//! - [`service`]: the gRPC service; it verifies every caller's token itself
//!   ([`caller`]) and keeps its rows in [`store`].
//! - [`client`], [`gateway`] and [`routes`]: the BFF's `/api/v1/orders`
//!   endpoints over gRPC; [`OrdersError`] maps what they fail with.
//! - [`config`]: the settings of `bff orders` and of the orders schema.

pub mod caller;
pub mod client;
pub mod config;
mod error;
pub mod gateway;
pub mod loyalty;
pub mod revocations;
pub mod routes;
pub mod server;
pub mod service;
pub mod store;

pub use self::error::OrdersError;
pub use self::gateway::OrdersGateway;

use bff_core::problem::FieldError;
use rust_decimal::Decimal;

use crate::money::Amount;

/// The code generated from `proto/bff/orders/v1/orders.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("bff.orders.v1");

    /// The encoded descriptors of the proto files, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/orders_descriptor.bin"));
}

/// Most lines in one order.
pub const MAX_ITEMS: usize = 100;
/// Most pieces of one line.
pub const MAX_QUANTITY: u32 = 10_000;
/// Totals stay below this: far beyond any real order, and well inside the
/// `NUMERIC(24, 4)` column.
const MAX_TOTAL: Decimal = Decimal::from_parts(2_764_472_320, 232_830, 0, false, 0); // 10^15

/// One line as a client sent it.
#[derive(Debug, Clone)]
pub struct ItemInput<'a> {
    /// Stock keeping unit.
    pub sku: &'a str,
    /// How many.
    pub quantity: u32,
    /// Price of one, a decimal string.
    pub unit_price: &'a str,
}

impl<'a> From<&'a proto::OrderItem> for ItemInput<'a> {
    fn from(item: &'a proto::OrderItem) -> Self {
        Self {
            sku: &item.sku,
            quantity: item.quantity,
            unit_price: &item.unit_price,
        }
    }
}

/// Checks an order against the rules both the BFF and the service apply, and
/// computes its total with exact decimals. Every bad field is reported.
pub fn validate(
    currency: &str,
    minor_units: u32,
    items: &[ItemInput<'_>],
) -> Result<store::NewOrder, Vec<FieldError>> {
    let mut errors = Vec::new();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        errors.push(FieldError::new(
            "currency",
            "must be an ISO 4217 code such as \"EUR\"",
        ));
    }
    if minor_units > 4 {
        errors.push(FieldError::new(
            "currency",
            "has more than 4 decimal places",
        ));
    }
    if items.is_empty() || items.len() > MAX_ITEMS {
        errors.push(FieldError::new(
            "items",
            format!("must hold 1 to {MAX_ITEMS} items"),
        ));
    }
    let mut lines = Vec::with_capacity(items.len().min(MAX_ITEMS));
    let mut total = Decimal::ZERO;
    for (i, item) in items.iter().enumerate().take(MAX_ITEMS) {
        let sku_ok = (1..=64).contains(&item.sku.len())
            && item
                .sku
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !sku_ok {
            errors.push(FieldError::new(
                format!("items[{i}].sku"),
                "must be 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'",
            ));
        }
        if !(1..=MAX_QUANTITY).contains(&item.quantity) {
            errors.push(FieldError::new(
                format!("items[{i}].quantity"),
                format!("must be 1 to {MAX_QUANTITY}"),
            ));
        }
        let price = Amount::parse(item.unit_price)
            .and_then(|amount| amount.for_currency(currency, minor_units));
        match price {
            Ok(price) => {
                // Prices have at most 15 integer digits and quantities 5, so a
                // line fits a Decimal easily; the total is bounded below.
                let line = price * Decimal::from(item.quantity);
                total = total.saturating_add(line);
                if sku_ok && (1..=MAX_QUANTITY).contains(&item.quantity) {
                    lines.push(store::Item {
                        sku: item.sku.to_owned(),
                        quantity: i32::try_from(item.quantity).unwrap_or(i32::MAX),
                        unit_price: price,
                    });
                }
            }
            Err(error) => errors.push(FieldError::new(
                format!("items[{i}].unit_price"),
                error.to_string(),
            )),
        }
    }
    if total >= MAX_TOTAL {
        errors.push(FieldError::new("items", "the order's total is too large"));
    }
    if errors.is_empty() {
        let mut total = total;
        total.rescale(minor_units);
        Ok(store::NewOrder {
            currency: currency.to_owned(),
            minor_units,
            items: lines,
            total,
        })
    } else {
        Err(errors)
    }
}

impl store::NewOrder {
    /// SHA-256 of the order's canonical form (normalised amounts), so a retry
    /// of the same order matches whatever spelling its prices had.
    pub fn content_hash(&self) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(self.currency.as_bytes());
        hasher.update(self.minor_units.to_be_bytes());
        for item in &self.items {
            let mut price = item.unit_price;
            price.rescale(self.minor_units);
            hasher.update(b"\n");
            hasher.update(item.sku.as_bytes());
            hasher.update(b"\t");
            hasher.update(item.quantity.to_be_bytes());
            hasher.update(b"\t");
            hasher.update(price.to_string().as_bytes());
        }
        hasher.finalize().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item<'a>(sku: &'a str, quantity: u32, unit_price: &'a str) -> ItemInput<'a> {
        ItemInput {
            sku,
            quantity,
            unit_price,
        }
    }

    #[test]
    fn totals_are_exact() {
        let order =
            validate("EUR", 2, &[item("A-1", 3, "0.10"), item("b_2", 1, "19.99")]).expect("valid");
        assert_eq!(order.total.to_string(), "20.29");
        assert_eq!(MAX_TOTAL, Decimal::from(1_000_000_000_000_000_u64));
    }

    #[test]
    fn every_bad_field_is_named() {
        let errors = validate(
            "eur",
            2,
            &[
                item("", 0, "1.999"),
                item("ok", 1, "-1"),
                item("x y", 10_001, "1"),
            ],
        )
        .expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "currency",
                "items[0].sku",
                "items[0].quantity",
                "items[0].unit_price",
                "items[1].unit_price",
                "items[2].sku",
                "items[2].quantity",
            ]
        );
        assert!(validate("EUR", 2, &[]).is_err());
        let huge = vec![item("a", 10_000, "999999999999999"); 2];
        assert!(validate("EUR", 2, &huge).is_err());
    }
}
