//! Just enough HTTP/1.1 to set up a run: sign up, create and share
//! documents, read them back. One connection per request.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

/// A response: status, headers (names lower case), body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if the status is a success.
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, Error> {
        if !(200..300).contains(&self.status) {
            return Err(Error(format!("{what}: HTTP {} {}", self.status, self.body.trim())));
        }
        serde_json::from_str(&self.body).map_err(|e| Error(format!("{what}: {e}: {}", self.body)))
    }
}

/// Sends one request to `host` (`host:port`).
pub async fn request(
    host: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<&str>,
) -> Result<Response, Error> {
    let mut stream = TcpStream::connect(host)
        .await
        .map_err(|e| Error(format!("connecting to {host}: {e}")))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(cookie) = cookie {
        head.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body);
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| Error(e.to_string()))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.map_err(|e| Error(e.to_string()))?;
    parse(&raw).ok_or_else(|| Error(format!("{method} {path}: malformed response")))
}

fn parse(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Some(Response {
        status,
        headers,
        body: String::from_utf8(body).ok()?,
    })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line = raw.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line]).ok()?.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain =
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nSet-Cookie: a=b; Path=/\r\n\r\n{\"x\":1}";
        let r = parse(plain).unwrap();
        assert_eq!((r.status, r.body.as_str()), (201, "{\"x\":1}"));
        assert_eq!(r.header("set-cookie"), Some("a=b; Path=/"));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\n\r\n";
        assert_eq!(parse(chunked).unwrap().body, "abcdefg");
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_none());
        assert!(parse(b"garbage").is_none());
    }

    #[test]
    fn refuses_errors_as_json() {
        let r = parse(b"HTTP/1.1 404 Not Found\r\n\r\nno document").unwrap();
        let e = r.json::<serde_json::Value>("read").unwrap_err();
        assert!(e.0.contains("404") && e.0.contains("no document"), "{e}");
    }
}
