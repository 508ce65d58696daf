//! One accepted connection: HTTP/1 or HTTP/2 (hyper-util's auto builder), each request tagged
//! with its [`Peer`] and bounded by the request timeout, and an idle watchdog that closes the
//! connection once nothing is being handled and nothing was sent for the idle timeout.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::ServiceExt;

use super::limiter::ConnState;
use super::limits::ListenerLimits;
use crate::auth::Peer;
use crate::error::ApiError;

/// HTTP/2 pings while a connection is open: a peer that answers none within the timeout is
/// gone, and its streams (an event stream) end with the connection.
const H2_PING_INTERVAL: Duration = Duration::from_secs(15);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle connection asked to close (HTTP/2: GOAWAY) is dropped after this at the latest.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The protocol settings of one listener, shared by its connections.
pub type Http = Arc<auto::Builder<TokioExecutor>>;

pub fn http(limits: &ListenerLimits) -> Http {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // hyper starts this when it waits for a request head (after the protocol sniff, after
    // each response), so it also bounds a trickled header.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout);
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    Arc::new(b)
}

fn timed_out(after: Duration) -> axum::response::Response {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request was not read and answered within {} s",
            after.as_secs_f64()
        ),
    )
    .into_response()
}

/// Serve `io` until the peer closes, an error, or the idle watchdog closes it.
pub async fn serve<I>(
    io: I,
    http: &Http,
    router: Router,
    peer: Peer,
    state: Arc<ConnState>,
    limits: &ListenerLimits,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let request_timeout = limits.request_timeout;
    let st = state.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        let router = router.clone();
        let st = st.clone();
        async move {
            let Some(handling) = st.start_request() else {
                // Its place went to a newer connection a moment ago and it is about to close:
                // leave the request unhandled, so the client's retry cannot duplicate it.
                return std::future::pending().await;
            };
            let answer = tokio::time::timeout(
                request_timeout,
                router.oneshot(req.map(axum::body::Body::new)),
            )
            .await;
            let resp = match answer {
                Ok(Ok(resp)) => resp,
                Ok(Err(never)) => match never {},
                Err(_) => timed_out(request_timeout),
            };
            // Counted as sending before it stops counting as handling: no gap in which the
            // connection looks idle to the limiter.
            let sending = st.start_body();
            drop(handling);
            Ok::<_, Infallible>(resp.map(move |body| {
                body.map_frame(move |frame| {
                    sending.state().touch();
                    frame
                })
            }))
        }
    });
    let conn = http.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let idle = limits.idle_timeout;
    loop {
        // While a request is handled the request timeout bounds it; look again after `idle`.
        let check = if state.is_handling() {
            Instant::now() + idle
        } else {
            state.idle_deadline(idle)
        };
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(check.into()) => {
                if state.is_idle(idle) {
                    tracing::debug!("closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await;
                    return;
                }
            }
        }
    }
}
