use async_nats::connection::State;

use super::{BoxFuture, CheckError, ReadinessCheck};

/// Readiness of NATS: the client is connected and a flush (a PING/PONG round trip
/// to the server) completes.
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
                State::Connected => self.client.flush().await.map_err(CheckError::new),
                state => Err(CheckError::new(format!("client is {state:?}"))),
            }
        })
    }
}
