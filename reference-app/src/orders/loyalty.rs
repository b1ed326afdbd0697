//! The loyalty responder: NATS request-reply on `loyalty.points.get`.
//!
//! A request carries the caller's access token in the `Authorization` header
//! (and `X-Request-Id`); the reply is the points and tier of the token's
//! subject, as JSON. Failures are replies too, with the NATS service-error
//! headers (`Nats-Service-Error`, `Nats-Service-Error-Code`: 401 or 503) and an
//! empty body, so a requester never waits out its timeout on a known failure.

use async_nats::HeaderMap;
use bff_core::RequestId;
use futures_util::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::caller::{CallerError, CallerVerifier};
use super::store;
use crate::messaging::Topology;

/// The request subject, relative to the deployment's prefix.
pub const SUBJECT: &str = "loyalty.points.get";

/// Queue group: with several instances each request is answered once.
const QUEUE_GROUP: &str = "loyalty";

/// Requests answered at once by one instance; more wait in the subscription,
/// so a slow database is not flooded by work for requesters that gave up.
const CONCURRENCY: usize = 64;

/// How long an answer may take when the request names no deadline.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// A user's standing in the loyalty programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Loyalty {
    /// One point per whole currency unit of every order not cancelled.
    pub points: i64,
    /// `bronze` below 500 points, `silver` below 2000, `gold` from 2000.
    pub tier: Tier,
}

/// Loyalty tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Under 500 points.
    Bronze,
    /// 500 to 1999 points.
    Silver,
    /// 2000 points and more.
    Gold,
}

impl Tier {
    /// The tier of `points`.
    pub fn of(points: i64) -> Self {
        match points {
            ..500 => Self::Bronze,
            500..2000 => Self::Silver,
            _ => Self::Gold,
        }
    }
}

/// Answers `loyalty.points.get` from the orders tables.
#[derive(Debug)]
pub struct LoyaltyResponder {
    nats: async_nats::Client,
    subject: String,
    db: PgPool,
    callers: CallerVerifier,
}

impl LoyaltyResponder {
    /// A responder on `topology`'s loyalty subject.
    pub fn new(
        nats: async_nats::Client,
        topology: &Topology,
        db: PgPool,
        callers: CallerVerifier,
    ) -> Self {
        Self {
            nats,
            subject: topology.subject(SUBJECT),
            db,
            callers,
        }
    }

    /// Answers requests until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut requests = match self
            .nats
            .queue_subscribe(self.subject.clone(), QUEUE_GROUP.to_owned())
            .await
        {
            Ok(subscriber) => subscriber,
            Err(error) => {
                tracing::error!(%error, subject = %self.subject, "cannot subscribe the loyalty responder");
                return;
            }
        };
        tracing::info!(subject = %self.subject, "loyalty responder ready");
        let mut in_flight = JoinSet::new();
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&slots).acquire_owned() => permit,
                _ = stop.changed() => break,
            };
            let Ok(permit) = permit else { break };
            let message = tokio::select! {
                message = requests.next() => message,
                _ = stop.changed() => break,
            };
            let Some(message) = message else { break };
            let (nats, db, callers) = (self.nats.clone(), self.db.clone(), self.callers.clone());
            in_flight.spawn(async move {
                answer(nats, db, callers, message).await;
                drop(permit);
            });
            while in_flight.try_join_next().is_some() {}
        }
        // Requests already delivered to this subscriber are answered, not
        // dropped: their requesters would otherwise wait out their timeouts.
        if requests.drain().await.is_ok() {
            let drained = async {
                while let Some(message) = requests.next().await {
                    let (nats, db, callers) =
                        (self.nats.clone(), self.db.clone(), self.callers.clone());
                    in_flight.spawn(answer(nats, db, callers, message));
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drained).await;
        }
        while in_flight.join_next().await.is_some() {}
        tracing::debug!("loyalty responder stopped");
    }
}

async fn answer(
    nats: async_nats::Client,
    db: PgPool,
    callers: CallerVerifier,
    message: async_nats::Message,
) {
    let Some(reply) = message.reply.clone() else {
        return;
    };
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let request_id = header("X-Request-Id")
        .and_then(|id| http::HeaderValue::from_str(&id).ok())
        .and_then(|id| RequestId::parse(&id))
        .unwrap_or_else(RequestId::generate);
    let authorization = header("Authorization");
    // Past the requester's deadline nobody reads the answer: stop there.
    let budget = header(bff_aggregate::nats::TIMEOUT_HEADER)
        .and_then(|ms| ms.parse::<u64>().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
        .min(DEFAULT_TIMEOUT);
    let work = async move {
        let outcome = match callers.verify(authorization.as_deref()).await {
            Ok(user) => store::points(&db, user).await.map_err(|error| {
                tracing::error!(error = %bff_core::problem::ErrorChain(&error), "loyalty lookup failed");
                (503, "the loyalty store is unavailable".to_owned())
            }),
            Err(error @ CallerError::KeysUnavailable) => Err((503, error.to_string())),
            Err(error) => Err((401, error.to_string())),
        };
        let sent = match outcome {
            Ok(points) => {
                let body = serde_json::to_vec(&Loyalty {
                    points,
                    tier: Tier::of(points),
                })
                .unwrap_or_default();
                nats.publish(reply, body.into()).await
            }
            Err((code, text)) => {
                let mut headers = HeaderMap::new();
                headers.insert(bff_aggregate::nats::SERVICE_ERROR, text.as_str());
                headers.insert(
                    bff_aggregate::nats::SERVICE_ERROR_CODE,
                    code.to_string().as_str(),
                );
                nats.publish_with_headers(reply, headers, Default::default())
                    .await
            }
        };
        if let Err(error) = sent {
            tracing::warn!(%error, "could not send a loyalty reply");
        }
    };
    // The requester's trace continues here (its source span is the parent):
    // only the BFF's instances may publish on the subject.
    let span = tracing::info_span!(
        "loyalty",
        otel.name = "loyalty.points.get process",
        otel.kind = "server",
        messaging.system = "nats",
        messaging.operation.type = "process",
    );
    bff_core::telemetry::otel::extract_with(header, &span);
    if request_id
        .scope(tokio::time::timeout(budget, work))
        .instrument(span)
        .await
        .is_err()
    {
        tracing::debug!("a loyalty request outlived its requester's deadline");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_have_sharp_edges() {
        assert_eq!(Tier::of(0), Tier::Bronze);
        assert_eq!(Tier::of(499), Tier::Bronze);
        assert_eq!(Tier::of(500), Tier::Silver);
        assert_eq!(Tier::of(1999), Tier::Silver);
        assert_eq!(Tier::of(2000), Tier::Gold);
    }
}
