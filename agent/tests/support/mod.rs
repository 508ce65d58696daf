//! A raw HTTP/1.1 server on 127.0.0.1 whose answers the test picks per request: exact-size
//! bodies (with or without Content-Length), a Content-Length it never sends, a chunked body
//! that never ends. Plain std threads, one per connection, `Connection: close`.

#![allow(dead_code)] // Each test binary uses a different part.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the server answers to one request (status 200 unless said otherwise).
#[derive(Debug, Clone)]
pub enum Answer {
    /// This body, with Content-Length.
    Body(Vec<u8>),
    /// `n` bytes in 16 KiB chunks, without Content-Length: only counting can refuse it.
    Chunked(usize),
    /// A chunked body that never ends.
    Endless,
    /// Like `Endless`, with this status (an error answer whose text never ends).
    EndlessStatus(u16),
    /// Declares `Content-Length: n`, sends no body byte, waits until the client hangs up.
    Declared(u64),
}

type Route = dyn Fn(&str, &str) -> Answer + Send + Sync;

#[derive(Default)]
struct Stats {
    requests: Mutex<Vec<String>>,
    /// Connections the client closed before the answer was complete.
    hangups: AtomicUsize,
}

pub struct FakeServer {
    pub url: String,
    stats: Arc<Stats>,
}

impl FakeServer {
    /// `route(method, path)` picks the answer.
    pub fn start(route: impl Fn(&str, &str) -> Answer + Send + Sync + 'static) -> FakeServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let stats = Arc::new(Stats::default());
        let route: Arc<Route> = Arc::new(route);
        let st = stats.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let (route, st) = (route.clone(), st.clone());
                std::thread::spawn(move || serve(s, &*route, &st));
            }
        });
        FakeServer { url, stats }
    }

    /// `"GET /health"`, ... in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.stats.requests.lock().unwrap().clone()
    }

    pub fn count(&self, method_path: &str) -> usize {
        self.requests().iter().filter(|r| *r == method_path).count()
    }

    pub fn hangups(&self) -> usize {
        self.stats.hangups.load(Ordering::SeqCst)
    }
}

fn serve(mut s: TcpStream, route: &Route, st: &Stats) {
    let Some((method, path)) = read_request(&mut s) else {
        return;
    };
    st.requests.lock().unwrap().push(format!("{method} {path}"));
    let answer = route(&method, &path);
    let status = match answer {
        Answer::EndlessStatus(s) => s,
        _ => 200,
    };
    let head = |len: Option<u64>| {
        let framing = match len {
            Some(n) => format!("content-length: {n}"),
            None => "transfer-encoding: chunked".into(),
        };
        format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{framing}\r\nconnection: close\r\n\r\n"
        )
    };
    let complete = match answer {
        Answer::Body(b) => {
            let mut out = head(Some(b.len() as u64)).into_bytes();
            out.extend_from_slice(&b);
            s.write_all(&out).is_ok()
        }
        Answer::Chunked(n) => write_chunks(&mut s, &head(None), Some(n)),
        Answer::Endless | Answer::EndlessStatus(_) => write_chunks(&mut s, &head(None), None),
        Answer::Declared(n) => {
            if s.write_all(head(Some(n)).as_bytes()).is_ok() {
                // Blocks until the client closes (EOF) or resets the connection.
                let _ = s.read(&mut [0u8; 1]);
            }
            false
        }
    };
    if !complete {
        st.hangups.fetch_add(1, Ordering::SeqCst);
    }
}

/// Chunked body of `total` bytes (forever when `None`); false when the client hung up.
fn write_chunks(s: &mut TcpStream, head: &str, total: Option<usize>) -> bool {
    const CHUNK: usize = 16 * 1024;
    let data = vec![b' '; CHUNK];
    if s.write_all(head.as_bytes()).is_err() {
        return false;
    }
    let mut left = total.unwrap_or(usize::MAX);
    while left > 0 {
        let n = left.min(CHUNK);
        let mut frame = format!("{n:x}\r\n").into_bytes();
        frame.extend_from_slice(&data[..n]);
        frame.extend_from_slice(b"\r\n");
        if s.write_all(&frame).is_err() {
            return false;
        }
        if total.is_some() {
            left -= n;
        }
    }
    s.write_all(b"0\r\n\r\n").is_ok()
}

/// The request line's method and path; the request body (Content-Length) is read and dropped.
fn read_request(s: &mut TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut words = text.split_whitespace();
    let (method, path) = (words.next()?.to_owned(), words.next()?.to_owned());
    let len = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((method, path))
}

/// A port nothing listens on (bound, then released).
pub fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}
