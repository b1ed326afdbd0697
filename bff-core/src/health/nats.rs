use async_nats::connection::State;
use futures_util::StreamExt;

use super::{BoxFuture, CheckError, ReadinessCheck};

/// Readiness of NATS: the client is connected and a message makes a round trip
/// through the server (published to a fresh inbox this client subscribes to,
/// and received back), so a server that accepts bytes but does not answer (a
/// hung or stopped process) is caught, not only a closed connection.
#[derive(Debug, Clone)]
pub struct NatsCheck {
    client: async_nats::Client,
}

impl NatsCheck {
    /// Checks `client`.
    pub fn new(client: async_nats::Client) -> Self {
        Self { client }
    }
}

impl ReadinessCheck for NatsCheck {
    fn name(&self) -> &str {
        "nats"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), CheckError>> {
        Box::pin(async move {
            match self.client.connection_state() {
                State::Connected => {
                    let inbox = self.client.new_inbox();
                    let mut echo = self
                        .client
                        .subscribe(inbox.clone())
                        .await
                        .map_err(CheckError::new)?;
                    self.client
                        .publish(inbox, bytes::Bytes::new())
                        .await
                        .map_err(CheckError::new)?;
                    match echo.next().await {
                        Some(_) => Ok(()),
                        None => Err(CheckError::new("the subscription ended")),
                    }
                }
                state => Err(CheckError::new(format!("client is {state:?}"))),
            }
        })
    }
}
