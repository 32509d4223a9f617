//! A guard on the master's PostgreSQL login: the password leaves only through SCRAM-SHA-256.
//!
//! tokio-postgres answers a server's AuthenticationCleartextPassword or AuthenticationMD5Password
//! request unless channel binding is required, and requiring it would also refuse servers that
//! offer SCRAM without channel binding. [`ScramOnly`] sits between the driver and the (TLS)
//! stream, reads the authentication requests the server sends before the login completes, and
//! fails the connection on a cleartext or MD5 request before the driver can answer it. SCRAM
//! (with channel binding whenever the server offers SCRAM-SHA-256-PLUS over TLS, which the
//! driver then uses) proves the password without revealing it, even to a rogue server.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// The error a refused authentication request fails the connection with.
#[derive(Debug, thiserror::Error)]
#[error("the server asked for {0} password authentication; refusing to send the master's password except through SCRAM-SHA-256 (trust rule: the master logs in with SCRAM only)")]
pub struct RefusedAuthentication(&'static str);

/// Where the scan of the server's messages is.
#[derive(Debug)]
enum Scan {
    /// Reading a message header (type byte and length): the bytes read so far.
    Header { bytes: [u8; 5], have: usize },
    /// In an authentication request: its code's bytes read so far, and the body left after it.
    Code {
        bytes: [u8; 4],
        have: usize,
        rest: usize,
    },
    /// Skipping the rest of a message's body.
    Skip { rest: usize },
    /// The login is over (or the server sent something else): everything passes.
    Done,
}

/// A stream that refuses a cleartext or MD5 password request from the server (see the module).
#[derive(Debug)]
pub struct ScramOnly<S> {
    inner: S,
    scan: Scan,
}

impl<S> ScramOnly<S> {
    /// Guards `inner`, whose next bytes from the server are the answer to the startup message.
    pub fn new(inner: S) -> Self {
        ScramOnly {
            inner,
            scan: Scan::Header {
                bytes: [0; 5],
                have: 0,
            },
        }
    }

    /// Feeds bytes the server sent; an error for a refused authentication request.
    fn feed(&mut self, mut data: &[u8]) -> Result<(), RefusedAuthentication> {
        while !data.is_empty() {
            match &mut self.scan {
                Scan::Done => return Ok(()),
                Scan::Header { bytes, have } => {
                    let take = (5 - *have).min(data.len());
                    bytes[*have..*have + take].copy_from_slice(&data[..take]);
                    *have += take;
                    data = &data[take..];
                    if *have == 5 {
                        let length = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
                        let body = usize::try_from(length)
                            .unwrap_or(usize::MAX)
                            .saturating_sub(4);
                        self.scan = if bytes[0] == b'R' && body >= 4 {
                            Scan::Code {
                                bytes: [0; 4],
                                have: 0,
                                rest: body - 4,
                            }
                        } else {
                            // An error or any other message: the driver handles it.
                            Scan::Done
                        };
                    }
                }
                Scan::Code { bytes, have, rest } => {
                    let take = (4 - *have).min(data.len());
                    bytes[*have..*have + take].copy_from_slice(&data[..take]);
                    *have += take;
                    data = &data[take..];
                    if *have == 4 {
                        let rest = *rest;
                        self.scan = match u32::from_be_bytes(*bytes) {
                            0 => Scan::Done,
                            3 => return Err(RefusedAuthentication("cleartext")),
                            5 => return Err(RefusedAuthentication("MD5")),
                            _ => Scan::Skip { rest },
                        };
                    }
                }
                Scan::Skip { rest } => {
                    let take = (*rest).min(data.len());
                    *rest -= take;
                    data = &data[take..];
                    if *rest == 0 {
                        self.scan = Scan::Header {
                            bytes: [0; 5],
                            have: 0,
                        };
                    }
                }
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ScramOnly<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if !matches!(self.scan, Scan::Done) {
                let fresh = buf.filled()[before..].to_vec();
                if let Err(refused) = self.feed(&fresh) {
                    buf.set_filled(before);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        refused,
                    )));
                }
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ScramOnly<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + Unpin> TlsStream for ScramOnly<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

/// A TLS connector whose streams are guarded by [`ScramOnly`].
#[derive(Clone)]
pub struct ScramOnlyTls<T>(pub T);

impl<S, M> MakeTlsConnect<S> for ScramOnlyTls<M>
where
    M: MakeTlsConnect<S>,
    M::TlsConnect: Send + 'static,
    <M::TlsConnect as TlsConnect<S>>::Future: Send + 'static,
{
    type Stream = ScramOnly<M::Stream>;
    type TlsConnect = ScramOnlyTls<M::TlsConnect>;
    type Error = M::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        self.0.make_tls_connect(domain).map(ScramOnlyTls)
    }
}

impl<S, T> TlsConnect<S> for ScramOnlyTls<T>
where
    T: TlsConnect<S>,
    T::Future: Send + 'static,
{
    type Stream = ScramOnly<T::Stream>;
    type Error = T::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, Self::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connecting = self.0.connect(stream);
        Box::pin(async move { connecting.await.map(ScramOnly::new) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_request(code: u32, body: &[u8]) -> Vec<u8> {
        let mut message = vec![b'R'];
        message.extend_from_slice(&(8 + body.len() as u32).to_be_bytes());
        message.extend_from_slice(&code.to_be_bytes());
        message.extend_from_slice(body);
        message
    }

    fn feed_in_pieces(bytes: &[u8], piece: usize) -> Result<(), RefusedAuthentication> {
        let mut guard = ScramOnly::new(());
        bytes.chunks(piece).try_for_each(|chunk| guard.feed(chunk))
    }

    #[test]
    fn cleartext_and_md5_requests_are_refused_however_the_bytes_arrive() {
        for piece in [1, 3, 64] {
            let err = feed_in_pieces(&auth_request(3, &[]), piece).unwrap_err();
            assert!(err.to_string().contains("cleartext"), "{err}");
            let err = feed_in_pieces(&auth_request(5, b"salt"), piece).unwrap_err();
            assert!(err.to_string().contains("MD5"), "{err}");
        }
    }

    #[test]
    fn a_scram_exchange_passes_and_then_everything_does() {
        let mut exchange = auth_request(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
        exchange.extend(auth_request(11, b"r=nonce,s=salt,i=4096"));
        exchange.extend(auth_request(12, b"v=signature"));
        exchange.extend(auth_request(0, &[]));
        // After the login, a message that would look like a request is just data.
        exchange.extend(auth_request(3, &[]));
        for piece in [1, 2, 7, 1000] {
            feed_in_pieces(&exchange, piece).unwrap();
        }
    }

    #[test]
    fn an_error_before_authentication_is_left_to_the_driver() {
        let mut error = vec![b'E'];
        error.extend_from_slice(&9u32.to_be_bytes());
        error.extend_from_slice(b"SFATAL\0\0");
        error.extend(auth_request(3, &[]));
        feed_in_pieces(&error, 4).unwrap();
    }
}
