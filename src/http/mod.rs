//! HTTP/1.1 on each shard's executor: every shard accepts connections on
//! the shared port (`SO_REUSEPORT`) and parses requests with `httparse`.

mod body;
mod server;

pub use server::{HttpRequest, HttpResponse, Limits, listen};
