//! `/api/v1/wallets`, `/api/v1/transfers` and deposits: extract and validate,
//! call the service, map.

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use aide::transform::TransformOperation;
use axum::extract::{FromRef, Path, State};
use bff_auth::layer::Principal;
use bff_cache::ratelimit::ClientIp;
use bff_core::Problem;
use bff_core::extract::{Json, Query};
use bff_core::pagination::{Page, PageParams};
use bff_rbac::{Authz, Policy};
use http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;
use uuid::Uuid;

use super::{Deposit, TransactionView, Transfer, TransferView, WalletService, WalletView};
use crate::currencies::{CODE_PATTERN, CurrencyCode};
use crate::http::ApiResult;
use bff_core::openapi::require_header;

use crate::http::docs::{self, bearer, invalid};
use crate::http::extract::{CallerId, ClientMeta, IdempotencyKeyHeader, path_id};
use crate::http::validation::{Fields, OPTIONAL_LINE, text};
use crate::money::{AMOUNT_PATTERN, Amount};
use crate::rbac;

fn doc(op: TransformOperation<'_>) -> TransformOperation<'_> {
    bearer(op.tag("money"))
}

fn missing(op: TransformOperation<'_>) -> TransformOperation<'_> {
    docs::not_found(op, "No such wallet of yours.")
}

/// The wallet, transfer and deposit endpoints.
pub fn routes<S>() -> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    WalletService: FromRef<S>,
    Policy: FromRef<S>,
    ClientIp: FromRef<S>,
{
    ApiRouter::new()
        .api_route(
            "/api/v1/wallets",
            get_with(list_wallets, |op| doc(op.summary("List my wallets"))).post_with(
                create_wallet,
                |op| {
                    invalid(doc(op.summary("Open a wallet")))
                        .response::<201, axum::Json<WalletView>>()
                        .response_with::<409, Problem, _>(|r| {
                            r.description("You already have a wallet in this currency.")
                        })
                },
            ),
        )
        .api_route(
            "/api/v1/wallets/{id}",
            get_with(get_wallet, |op| {
                missing(doc(op.summary("Get a wallet").description(
                    "Your own; managers and admins read anyone's.",
                )))
            }),
        )
        .api_route(
            "/api/v1/wallets/{id}/transactions",
            get_with(list_transactions, |op| {
                missing(doc(op.summary("A wallet's ledger entries").description(
                    "Newest first. Your own wallet's; managers and admins read anyone's.",
                )))
            }),
        )
        .api_route(
            "/api/v1/transfers",
            post_with(transfer, |op| {
                require_header(invalid(missing(doc(op.summary("Transfer money").description(
                    "Between two wallets of one currency, from one of yours. Requires `Idempotency-Key`: a repeat with the same key and body replays the first answer; with another body it is 409.",
                )))), "Idempotency-Key")
                .response::<201, axum::Json<TransferView>>()
                .response_with::<409, Problem, _>(|r| r.description("The `Idempotency-Key` was used with another body."))
            }),
        )
        .api_route(
            "/api/v1/admin/wallets/{id}/deposit",
            post_with(deposit, |op| {
                invalid(missing(doc(op.summary("Deposit into a wallet").description(
                    "Managers and admins. `Idempotency-Key` is optional and works as for transfers.",
                ))))
                .response::<201, axum::Json<TransferView>>()
                .response_with::<403, Problem, _>(|r| r.description("Not a manager or admin, or a deposit into your own wallet."))
                .response_with::<409, Problem, _>(|r| r.description("The `Idempotency-Key` was used with another body."))
            }),
        )
}

/// Path of one wallet.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct WalletPath {
    /// Wallet id.
    #[schemars(with = "Uuid")]
    id: String,
}

/// `POST /wallets` body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWallet {
    /// ISO 4217 code of a supported currency.
    #[schemars(regex(pattern = CODE_PATTERN))]
    currency: String,
}

/// `POST /transfers` body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// One of your wallets.
    from_wallet_id: Uuid,
    /// Any wallet of the same currency.
    to_wallet_id: Uuid,
    /// A decimal string such as `"10.50"`, more than zero, with at most the
    /// currency's decimal places.
    #[schemars(regex(pattern = AMOUNT_PATTERN))]
    amount: String,
}

/// `POST /admin/wallets/{id}/deposit` body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DepositRequest {
    /// A decimal string, more than zero, at most the currency's decimal places.
    #[schemars(regex(pattern = AMOUNT_PATTERN))]
    amount: String,
    /// Why, up to 200 characters.
    #[serde(default)]
    #[schemars(length(max = 200), regex(pattern = OPTIONAL_LINE))]
    note: Option<String>,
}

async fn list_wallets(
    State(wallets): State<WalletService>,
    caller: CallerId,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<WalletView>>> {
    let page = params.validate::<Uuid>()?;
    let rows = wallets
        .list(caller.0, page.after, page.fetch_limit())
        .await?;
    Ok(Json(Page::from_rows(rows, page.limit, |last| last.id)))
}

async fn create_wallet(
    State(wallets): State<WalletService>,
    caller: CallerId,
    Json(body): Json<NewWallet>,
) -> ApiResult<(StatusCode, Json<WalletView>)> {
    let currency = CurrencyCode::parse(body.currency.trim())
        .map_err(|e| Problem::invalid_field("currency", e.to_string()))?;
    let wallet = wallets.open(caller.0, &currency).await?;
    Ok((StatusCode::CREATED, Json(wallet)))
}

/// Whose wallets `authz` may see: only the caller's own, or anyone's
/// (`None`) for managers and admins.
fn visible_owner(authz: &Authz<Principal>) -> ApiResult<Option<Uuid>> {
    let scope = authz.scope(rbac::WALLETS_READ_ANY);
    Ok(scope
        .owner()
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| Problem::unauthorized())?)
}

async fn get_wallet(
    State(wallets): State<WalletService>,
    authz: Authz<Principal>,
    Path(path): Path<WalletPath>,
) -> ApiResult<Json<WalletView>> {
    let owner = visible_owner(&authz)?;
    Ok(Json(wallets.get(path_id(&path.id)?, owner).await?))
}

async fn list_transactions(
    State(wallets): State<WalletService>,
    authz: Authz<Principal>,
    Path(path): Path<WalletPath>,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<TransactionView>>> {
    let (owner, id) = (visible_owner(&authz)?, path_id(&path.id)?);
    let page = params.validate::<Uuid>()?;
    let rows = wallets
        .transactions(id, owner, page.after, page.fetch_limit())
        .await?;
    Ok(Json(Page::from_rows(rows, page.limit, |last| last.id)))
}

async fn transfer(
    State(wallets): State<WalletService>,
    caller: CallerId,
    meta: ClientMeta,
    key: IdempotencyKeyHeader,
    Json(body): Json<TransferRequest>,
) -> ApiResult<(StatusCode, Json<TransferView>)> {
    let mut fields = Fields::default();
    let key = key.required(&mut fields);
    let amount = fields.check("amount", Amount::parse(&body.amount));
    if body.from_wallet_id == body.to_wallet_id {
        fields.push("to_wallet_id", "must differ from from_wallet_id");
    }
    let (Some(key), Some(amount)) = (key, amount) else {
        return Err(fields.problem().into());
    };
    fields.finish()?;
    let view = wallets
        .transfer(Transfer {
            user: caller.0,
            from: body.from_wallet_id,
            to: body.to_wallet_id,
            amount,
            amount_text: &body.amount,
            key: &key,
            ip: meta.ip.as_deref(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn deposit(
    State(wallets): State<WalletService>,
    authz: Authz<Principal>,
    meta: ClientMeta,
    key: IdempotencyKeyHeader,
    Path(path): Path<WalletPath>,
    Json(body): Json<DepositRequest>,
) -> ApiResult<(StatusCode, Json<TransferView>)> {
    authz.require(rbac::WALLETS_DEPOSIT)?;
    let actor = CallerId::of(&authz.subject)?;
    let to = path_id(&path.id)?;
    let mut fields = Fields::default();
    let key = key.optional(&mut fields);
    let amount = fields.check("amount", Amount::parse(&body.amount));
    let note = fields.check_opt("note", body.note.clone(), |n| text(&n, 0, 200, false));
    let (Some(key), Some(amount)) = (key, amount) else {
        return Err(fields.problem().into());
    };
    fields.finish()?;
    let view = wallets
        .deposit(Deposit {
            actor: actor.0,
            to,
            amount,
            amount_text: &body.amount,
            note,
            note_text: body.note.as_deref(),
            key: key.as_ref(),
            ip: meta.ip.as_deref(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}
