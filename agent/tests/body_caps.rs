//! `Http` reads every response body against its cap (agent/src/http.rs): the exact boundary,
//! a Content-Length over the cap, an endless chunked body. Real sockets on 127.0.0.1.

mod support;

use std::time::{Duration, Instant};

use plasma_agent::discover::{self, Backoff, PostConfig, PostError};
use plasma_agent::http::{Http, HttpError, Limit, MEMBERS_BODY_LIMIT, SMALL_BODY_LIMIT};
use plasma_wire::TlsPaths;
use plasma_wire::discover::{Cpu, DiscoverReport};
use reqwest::Url;
use support::{Answer, FakeServer};

/// The request timeout of every call here: an attempt that only ends by it failed the test.
const TIMEOUT: Duration = Duration::from_secs(5);

fn http() -> Http {
    let tls = TlsPaths {
        ca: "/nonexistent/ca.pem".into(),
        cert: "/nonexistent/cert.pem".into(),
        key: "/nonexistent/key.pem".into(),
    };
    Http::new(&tls, false, false).unwrap()
}

fn url(srv: &FakeServer, path: &str) -> Url {
    format!("{}{path}", srv.url).parse().unwrap()
}

async fn get(srv: &FakeServer, limit: Limit) -> Result<Vec<u8>, HttpError> {
    http()
        .get(&url(srv, "/x"), limit, Some(TIMEOUT))
        .await
        .map(|r| r.body)
}

async fn post(srv: &FakeServer, limit: Limit) -> Result<Vec<u8>, HttpError> {
    let body = serde_json::json!({"id": "node04"});
    http()
        .post_json(&url(srv, "/x"), &body, limit, Some(TIMEOUT))
        .await
        .map(|r| r.body)
}

fn assert_too_large(r: Result<Vec<u8>, HttpError>, limit: usize, declared: Option<u64>) {
    match r {
        Err(HttpError::BodyTooLarge {
            limit: l,
            declared: d,
            ref url,
        }) => {
            assert_eq!((l, d), (limit, declared));
            assert!(url.ends_with("/x"), "{url}");
        }
        other => panic!("want BodyTooLarge({limit}, {declared:?}), got {other:?}"),
    }
}

/// Waits (real time) until the server saw `n` clients hang up mid-answer.
async fn hangups(srv: &FakeServer, n: usize) {
    let until = Instant::now() + Duration::from_secs(2);
    while srv.hangups() < n {
        assert!(
            Instant::now() < until,
            "the client kept the connection open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn small_cap_accepts_exactly_64_kib_and_refuses_one_byte_more() {
    assert_eq!(SMALL_BODY_LIMIT, 64 * 1024);
    let cap = SMALL_BODY_LIMIT;
    for chunked in [false, true] {
        let answer = move |n: usize| {
            if chunked {
                Answer::Chunked(n)
            } else {
                Answer::Body(vec![b'x'; n])
            }
        };
        // With Content-Length the header refuses it; chunked, only counting can.
        let declared = (!chunked).then_some(cap as u64 + 1);
        let at = FakeServer::start(move |_, _| answer(cap));
        let over = FakeServer::start(move |_, _| answer(cap + 1));
        assert_eq!(get(&at, Limit::Small).await.unwrap().len(), cap);
        assert_eq!(post(&at, Limit::Small).await.unwrap().len(), cap);
        assert_too_large(get(&over, Limit::Small).await, cap, declared);
        assert_too_large(post(&over, Limit::Small).await, cap, declared);
    }
}

#[tokio::test]
async fn members_cap_accepts_exactly_4_mib_and_refuses_one_byte_more() {
    assert_eq!(MEMBERS_BODY_LIMIT, 4 * 1024 * 1024);
    let cap = MEMBERS_BODY_LIMIT;
    let at = FakeServer::start(move |_, _| Answer::Chunked(cap));
    let over = FakeServer::start(move |_, _| Answer::Chunked(cap + 1));
    assert_eq!(get(&at, Limit::Members).await.unwrap().len(), cap);
    assert_too_large(get(&over, Limit::Members).await, cap, None);
    // The cap belongs to the call: the same 4 MiB is refused where a small body is expected.
    assert_too_large(get(&at, Limit::Small).await, SMALL_BODY_LIMIT, None);
}

#[tokio::test]
async fn huge_content_length_is_refused_before_any_body_byte() {
    let huge = 10 * 1024 * 1024 * 1024u64;
    // The server declares 10 GiB and then sends nothing: only the header can end this early.
    let srv = FakeServer::start(move |_, _| Answer::Declared(huge));
    let started = Instant::now();
    let r = get(&srv, Limit::Members).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let msg = r.as_ref().unwrap_err().to_string();
    assert!(
        msg.contains("of 10737418240 bytes (Content-Length) is over the 4194304-byte cap"),
        "{msg}"
    );
    assert_too_large(r, MEMBERS_BODY_LIMIT, Some(huge));
    hangups(&srv, 1).await;
}

#[tokio::test]
async fn endless_chunked_body_ends_the_attempt_at_the_cap() {
    let srv = FakeServer::start(|_, _| Answer::Endless);
    for (limit, cap) in [
        (Limit::Small, SMALL_BODY_LIMIT),
        (Limit::Members, MEMBERS_BODY_LIMIT),
    ] {
        let started = Instant::now();
        let r = get(&srv, limit).await;
        // Far from the 5 s request timeout, which would otherwise be the only end.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{limit:?}: {took:?}");
        let msg = r.as_ref().unwrap_err().to_string();
        assert!(
            msg.contains(&format!("is over the {cap}-byte cap")),
            "{msg}"
        );
        assert_too_large(r, cap, None);
    }
    // Both connections were dropped by the client, not left streaming.
    hangups(&srv, 2).await;
    assert_eq!(srv.requests(), ["GET /x", "GET /x"]);
}

#[tokio::test]
async fn discover_error_answer_over_the_cap_is_a_failed_attempt() {
    // Before the caps a 4xx ended the run at once, after reading its body whole; an endless
    // one is now refused at 64 KiB and retried like a 5xx until the timeout.
    let srv = FakeServer::start(|_, _| Answer::EndlessStatus(422));
    let report = DiscoverReport {
        primary_mac: "52:54:00:12:34:56".into(),
        nics: vec![],
        disks: vec![],
        memory_bytes: 8 << 30,
        cpu: Cpu {
            model: "QEMU Virtual CPU".into(),
            logical_cpus: 2,
        },
        hostname: None,
        firmware: None,
        bmc: None,
    };
    let cfg = PostConfig {
        timeout: Duration::from_secs(1),
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(200),
        },
        ca_file: None,
    };
    let started = Instant::now();
    let err = discover::post_report(&srv.url, &report, &cfg)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    match err {
        PostError::Timeout { attempts, last, .. } => {
            assert!(attempts >= 3, "{attempts} attempts");
            assert_eq!(srv.count("POST /v1/discover"), attempts as usize);
            assert!(
                last == "HTTP 422: response body is over the 65536-byte cap: refused",
                "{last}"
            );
        }
        other => panic!("want a timeout after retries, got {other:?}"),
    }
    hangups(&srv, 3).await;
}
