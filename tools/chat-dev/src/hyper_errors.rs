//! hyper's own answers to requests it cannot parse, in the API's error shape.
//!
//! hyper 1 answers a request head it cannot parse by itself, before any service sees it: 431
//! for too many or too large headers, 414 for a URI over 64 KiB, 400 for anything malformed
//! (`proto::h1::role::Server::on_error`). The answer is a bare head (`content-length: 0`,
//! `date`), and no builder option or hook changes it. So the dev server's sockets are wrapped
//! in [`JsonErrors`], which recognises that bare answer as it is written and sends
//! `{"error": {"code", "message"}}` instead, with `connection: close` (hyper closes the
//! connection after it anyway).
//!
//! The answer is told apart from the API's own by its shape: every answer of ours carries
//! `x-content-type-options` and a JSON body, while hyper's has no header but `content-length:
//! 0`, `date` and possibly `connection`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest bare head hyper writes for a parse error (status line, `content-length`,
/// `date`, `connection`), with room to spare.
const MAX_BARE_HEAD: usize = 256;

/// A connection whose writes pass through unchanged, except hyper's bare parse-error
/// answers, which become JSON (see the module docs).
pub struct JsonErrors<T> {
    inner: T,
    /// Bytes accepted from hyper and not yet written to `inner`.
    pending: Vec<u8>,
    sent: usize,
}

impl<T> JsonErrors<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            sent: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    /// Writes out what [`poll_write`](AsyncWrite::poll_write) accepted but replaced.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        let Some((start, answer)) = bare_error_at_end(buf) else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        // Whatever came before it (answers to pipelined requests), then ours. Accepted whole;
        // what the socket does not take now goes out on the next write, flush or shutdown.
        this.pending.extend_from_slice(&buf[..start]);
        this.pending.extend_from_slice(&answer);
        let _ = this.poll_drain(cx)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Not vectored, so hyper flattens each write into one buffer and a bare head is seen
    // whole.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// Where a bare parse-error head of hyper's ends `written`, and the JSON answer to send
/// instead of it.
fn bare_error_at_end(written: &[u8]) -> Option<(usize, Vec<u8>)> {
    if !written.ends_with(b"\r\n\r\n") {
        return None;
    }
    let tail_start = written.len().saturating_sub(MAX_BARE_HEAD);
    let tail = &written[tail_start..];
    // The earliest status line in the tail from which the rest is one bare head.
    (0..tail.len())
        .filter(|&i| tail[i..].starts_with(b"HTTP/1."))
        .find_map(|i| json_answer(&tail[i..]).map(|answer| (tail_start + i, answer)))
}

/// The JSON answer for `head` when it is hyper's bare 400, 414 or 431, else `None`.
fn json_answer(head: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(head).ok()?.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?;
    let (code, message) = match status.get(..3)? {
        "400" => (
            "bad_request",
            "The request is not valid HTTP/1.1: a malformed request line or header.",
        ),
        "414" => ("uri_too_long", "The request's URI is too long."),
        "431" => (
            "headers_too_large",
            "The request's headers are too large: too many, or too long.",
        ),
        _ => return None,
    };
    let mut empty = false;
    let mut date = None;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => empty = value == "0",
            "date" => date = Some(value),
            "connection" => {}
            // Any other header (ours all carry `x-content-type-options`): not hyper's.
            _ => return None,
        }
    }
    if !empty {
        return None;
    }
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    let date = date.map(|d| format!("date: {d}\r\n")).unwrap_or_default();
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             x-content-type-options: nosniff\r\nconnection: close\r\n{date}\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bare_answers_become_json() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 12:00:00 GMT\r\n\r\n";
        let (start, answer) = bare_error_at_end(bare).expect("rewritten");
        assert_eq!(start, 0);
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())),
            "{head}"
        );
        assert!(
            head.contains("\r\ndate: Tue, 01 Dec 2026 12:00:00 GMT"),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "headers_too_large");
    }

    #[test]
    fn an_answer_after_a_pipelined_one_is_found_at_the_end() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".as_slice();
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n".as_slice();
        let written = [ok, bare].concat();
        let (start, answer) = bare_error_at_end(&written).expect("rewritten");
        assert_eq!(start, ok.len());
        assert!(
            String::from_utf8(answer)
                .unwrap()
                .contains("\"bad_request\"")
        );
    }

    #[test]
    fn the_apis_own_answers_pass_unchanged() {
        for written in [
            // Ours carry nosniff, a type and a body.
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nx-content-type-options: nosniff\r\ncontent-length: 0\r\n\r\n".as_slice(),
            // A 204, a 200 without a body, another status.
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-length: 0\r\n\r\n",
            // A body that happens to end like a head.
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab\r\n\r\n",
        ] {
            assert!(
                bare_error_at_end(written).is_none(),
                "{}",
                String::from_utf8_lossy(written)
            );
        }
    }
}
