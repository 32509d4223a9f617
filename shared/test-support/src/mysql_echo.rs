//! A MySQL-protocol proxy that echoes statements back in errors, as a server or proxy that
//! does not understand a clause does ("You have an error in your SQL syntax ... near '...'"):
//! every query holding `PASSWORD` or `IDENTIFIED` is answered with error 1064 quoting the
//! whole statement, and never reaches the server. Everything else passes through unchanged.
//! Plaintext only (the secret says `"ssl": false`), so the proxy can read the commands.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// COM_QUERY.
const COM_QUERY: u8 = 0x03;

/// A running echo proxy in front of a MySQL server.
pub struct EchoProxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoProxy {
    /// Listens on an ephemeral port of 127.0.0.1, forwarding to `upstream_host:upstream_port`.
    pub async fn start(upstream_host: &str, upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("echo proxy port");
        let port = listener.local_addr().expect("echo proxy address").port();
        let upstream = format!("{upstream_host}:{upstream_port}");
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        relay(client, server).await;
                    }
                });
            }
        });
        EchoProxy { port, task }
    }
}

/// The ERR packet (sequence 1) a server sends for a syntax error near `statement`.
fn syntax_error(statement: &[u8]) -> Vec<u8> {
    let mut payload = vec![0xff];
    payload.extend_from_slice(&1064u16.to_le_bytes());
    payload.extend_from_slice(b"#42000");
    payload.extend_from_slice(
        b"You have an error in your SQL syntax; check the manual that corresponds to your server version for the right syntax to use near '",
    );
    payload.extend_from_slice(statement);
    payload.extend_from_slice(b"' at line 1");
    let len = u32::try_from(payload.len())
        .expect("short packet")
        .to_le_bytes();
    let mut packet = vec![len[0], len[1], len[2], 1];
    packet.extend_from_slice(&payload);
    packet
}

async fn relay(client: TcpStream, server: TcpStream) {
    let (mut client_read, client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let client_write = Arc::new(Mutex::new(client_write));
    let to_client = Arc::clone(&client_write);
    let downstream = tokio::spawn(async move {
        let mut buffer = vec![0u8; 16 * 1024];
        while let Ok(n) = server_read.read(&mut buffer).await {
            if n == 0
                || to_client
                    .lock()
                    .await
                    .write_all(&buffer[..n])
                    .await
                    .is_err()
            {
                break;
            }
        }
        let _ = to_client.lock().await.shutdown().await;
    });
    let _ = upstream(&mut client_read, &mut server_write, &client_write).await;
    downstream.abort();
}

/// Client to server, packet by packet: a query with a password clause is answered here.
async fn upstream(
    client: &mut tokio::net::tcp::OwnedReadHalf,
    server: &mut OwnedWriteHalf,
    client_write: &Mutex<OwnedWriteHalf>,
) -> std::io::Result<()> {
    loop {
        let mut header = [0u8; 4];
        client.read_exact(&mut header).await?;
        let len =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        let mut payload = vec![0u8; len];
        client.read_exact(&mut payload).await?;
        let is_command = header[3] == 0;
        let echoes = is_command
            && payload.first() == Some(&COM_QUERY)
            && [&b"PASSWORD"[..], b"IDENTIFIED"]
                .iter()
                .any(|word| payload.windows(word.len()).any(|w| w == *word));
        if echoes {
            client_write
                .lock()
                .await
                .write_all(&syntax_error(&payload[1..]))
                .await?;
        } else {
            server.write_all(&header).await?;
            server.write_all(&payload).await?;
        }
    }
}
