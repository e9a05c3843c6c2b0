//! The byte streams that connections run on: plain TCP, and TLS over TCP
//! for the server-server API.

use std::{io, time::Duration};

use monoio::{
    io::{
        AsyncReadRent, AsyncWriteRentExt, CancelableAsyncReadRent, CancelableAsyncWriteRentExt,
        Canceller,
    },
    net::TcpStream,
};

use super::server::{return_read_buffer, take_read_buffer};

/// A connection's stream, with the two operations that the HTTP server
/// needs, each bounded in time.
pub trait Transport {
    /// Reads more bytes into `buffer`, waiting at most `wait`. Returns
    /// `false` at the end of the stream, on an error or on timeout.
    async fn read_more(&mut self, buffer: &mut Vec<u8>, wait: Duration) -> bool;

    /// Writes all of `bytes` within `timeout`.
    async fn write_within(&mut self, bytes: Vec<u8>, timeout: Duration) -> io::Result<()>;
}

impl Transport for TcpStream {
    async fn read_more(&mut self, buffer: &mut Vec<u8>, wait: Duration) -> bool {
        // A read dropped on timeout would stay queued in io_uring and keep the
        // socket open, so the timeout cancels it and waits for its completion.
        let canceller = Canceller::new();
        let read = self.cancelable_read(take_read_buffer(), canceller.handle());
        let mut read = std::pin::pin!(read);
        let (result, scratch) = monoio::select! {
            done = &mut read => done,
            () = monoio::time::sleep(wait) => {
                canceller.cancel();
                let (_, scratch) = read.await;
                return_read_buffer(scratch);
                return false;
            }
        };
        let read_some = matches!(result, Ok(n) if n > 0);
        if let Ok(n) = result {
            buffer.extend_from_slice(&scratch[..n]);
        }
        return_read_buffer(scratch);
        read_some
    }

    async fn write_within(&mut self, bytes: Vec<u8>, timeout: Duration) -> io::Result<()> {
        let canceller = Canceller::new();
        let write = CancelableAsyncWriteRentExt::write_all(self, bytes, canceller.handle());
        let mut write = std::pin::pin!(write);
        monoio::select! {
            (result, _) = &mut write => result.map(|_| ()),
            () = monoio::time::sleep(timeout) => {
                canceller.cancel();
                let _ = write.await;
                Err(io::Error::from(io::ErrorKind::TimedOut))
            }
        }
    }
}

/// TLS streams have no cancelable operations. A timed-out operation is
/// dropped, and the connection is closed after it, because the TLS session
/// state is then unknown.
impl Transport for monoio_rustls::ServerTlsStream<TcpStream> {
    async fn read_more(&mut self, buffer: &mut Vec<u8>, wait: Duration) -> bool {
        let read = AsyncReadRent::read(self, take_read_buffer());
        let Ok((result, scratch)) = monoio::time::timeout(wait, read).await else {
            return false;
        };
        let read_some = matches!(result, Ok(n) if n > 0);
        if let Ok(n) = result {
            buffer.extend_from_slice(&scratch[..n]);
        }
        return_read_buffer(scratch);
        read_some
    }

    async fn write_within(&mut self, bytes: Vec<u8>, timeout: Duration) -> io::Result<()> {
        let write = AsyncWriteRentExt::write_all(self, bytes);
        match monoio::time::timeout(timeout, write).await {
            Ok((result, _)) => result.map(|_| ()),
            Err(_) => Err(io::Error::from(io::ErrorKind::TimedOut)),
        }
    }
}
