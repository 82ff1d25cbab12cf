//! A TCP proxy a test puts between a client and a real server, to make the network misbehave:
//! [`Proxy::freeze`] keeps every connection open but stops moving bytes (a server that
//! accepted the connection and then hangs), [`Proxy::cut`] drops every connection.
//!
//! The server behind it is the real one; only the wire is interfered with.

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_util::sync::CancellationToken;

/// A running proxy; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    frozen: watch::Sender<bool>,
    generation: watch::Sender<u64>,
    stop: CancellationToken,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Proxy {
    /// Listens on a free local port and forwards each connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (frozen, _) = watch::channel(false);
        let (generation, _) = watch::channel(0u64);
        let proxy = Self {
            addr,
            frozen,
            generation,
            stop: CancellationToken::new(),
        };
        let (stop, frozen, generation) = (
            proxy.stop.clone(),
            proxy.frozen.clone(),
            proxy.generation.clone(),
        );
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((client, _)) = accepted else { continue };
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (c_read, c_write) = client.into_split();
                let (s_read, s_write) = server.into_split();
                let conn = stop.child_token();
                let mut gen_rx = generation.subscribe();
                let born = *gen_rx.borrow();
                let killer = conn.clone();
                tokio::spawn(async move {
                    loop {
                        if *gen_rx.borrow() != born {
                            killer.cancel();
                            return;
                        }
                        tokio::select! {
                            _ = killer.cancelled() => return,
                            r = gen_rx.changed() => if r.is_err() { killer.cancel(); return },
                        }
                    }
                });
                tokio::spawn(pipe(c_read, s_write, frozen.subscribe(), conn.clone()));
                tokio::spawn(pipe(s_read, c_write, frozen.subscribe(), conn));
            }
        });
        Ok(proxy)
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops forwarding in both directions; connections stay open and new ones are accepted
    /// (and hang) until [`Proxy::thaw`].
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Forwards again, delivering whatever waited.
    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    /// Closes every open connection (new ones are still accepted and forwarded).
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // While frozen, read nothing: the sender's kernel buffers fill and it waits, as it
        // would for a server that stopped answering.
        while *frozen.borrow() {
            tokio::select! {
                _ = stop.cancelled() => return,
                r = frozen.changed() => if r.is_err() { return },
            }
        }
        let n = tokio::select! {
            _ = stop.cancelled() => return,
            _ = frozen.changed() => continue,
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => { stop.cancel(); return }
                Ok(n) => n,
            },
        };
        if *frozen.borrow() {
            // Frozen after the read: hold the bytes until thawed.
            while *frozen.borrow() {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = frozen.changed() => if r.is_err() { return },
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            stop.cancel();
            return;
        }
    }
}
