//! HTTP/1.1 on each shard's executor: every shard accepts connections on
//! the shared port (`SO_REUSEPORT`) and parses requests with `httparse`.

pub(crate) mod body;
mod server;
mod tls;
mod transport;

pub use server::{HttpRequest, HttpResponse, Limits, listen};
pub use tls::{TlsError, client_config, server_acceptor};
