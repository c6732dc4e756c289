//! The TCP listener: accepts clients, runs one task per connection, shuts down gracefully.
//!
//! Shutdown: stop accepting; each connection closes as soon as it is between statements;
//! statements still running after the grace period are cancelled (the client gets 57P01),
//! then the remaining sockets are closed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use floe_sql::Engine;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::cancel::{CancelReason, Registry};
use crate::handler::{Connection, ConnectionLimits, FloeCancelHandler, Handlers};

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Maximum concurrent client connections.
    pub max_connections: usize,
    /// How long shutdown waits for running statements before cancelling them.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5432)),
            max_connections: 100,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// A bound Floe server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    engine: Arc<Engine>,
    registry: Arc<Registry>,
    config: ServerConfig,
}

impl Server {
    /// Binds the listening socket.
    pub async fn bind(config: ServerConfig, engine: Arc<Engine>) -> io::Result<Server> {
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Server {
            listener,
            engine,
            registry: Registry::new(),
            config,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves clients until `shutdown` resolves, then shuts down gracefully.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> io::Result<()> {
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        let engine = self.engine.clone();
                        let registry = self.registry.clone();
                        let limits = ConnectionLimits {
                            max_connections: self.config.max_connections,
                        };
                        let grace = self.config.shutdown_grace;
                        tasks.spawn(serve_connection(socket, peer, engine, registry, limits, grace));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = &mut shutdown => break,
            }
        }
        drop(self.listener);
        tracing::info!(
            connections = self.registry.connection_count(),
            "shutting down: waiting for running statements"
        );
        self.registry.begin_shutdown();
        let deadline = self.config.shutdown_grace + Duration::from_secs(5);
        if tokio::time::timeout(deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!("connections still open after the grace period; closing them");
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        tracing::info!("shutdown complete");
        Ok(())
    }
}

async fn serve_connection(
    socket: TcpStream,
    peer: SocketAddr,
    engine: Arc<Engine>,
    registry: Arc<Registry>,
    limits: ConnectionLimits,
    grace: Duration,
) {
    registry.connection_opened();
    if let Err(e) = socket.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "set_nodelay failed");
    }
    let conn = Connection::new(engine, registry.clone(), limits);
    let handlers = Handlers {
        conn: conn.clone(),
        cancel: Arc::new(FloeCancelHandler {
            registry: registry.clone(),
        }),
    };
    let mut shutdown = registry.shutdown_signal();
    let process = pgwire::tokio::process_socket(socket, None, handlers);
    tokio::pin!(process);
    let stop = async {
        let _ = shutdown.wait_for(|s| *s).await;
        if let Some(control) = conn.control() {
            if tokio::time::timeout(grace, control.wait_idle())
                .await
                .is_err()
            {
                control.cancel(CancelReason::Shutdown);
                let _ = tokio::time::timeout(Duration::from_secs(2), control.wait_idle()).await;
            }
        }
        // Let the last response (ReadyForQuery) reach the socket.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::select! {
        biased;
        result = &mut process => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        _ = stop => {
            tracing::debug!(%peer, "connection closed for shutdown");
        }
    }
    registry.connection_closed();
}
