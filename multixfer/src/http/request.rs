//! Writing a request head (and a body given as bytes).

use bytes::{BufMut, BytesMut};

/// Appends an HTTP/1.1 request to `out`: request line, `Host`, the caller's headers, then
/// `Content-Length` when there is a body (and the caller did not set one), and the body.
///
/// ```
/// use bytes::BytesMut;
/// let mut out = BytesMut::new();
/// multixfer::http::encode_request(&mut out, "GET", "127.0.0.1:8080", "/a?b=1", &[("Accept", "*/*")], None);
/// assert_eq!(&out[..], b"GET /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\n\r\n");
/// ```
pub fn encode_request(
    out: &mut BytesMut,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) {
    out.put_slice(method.as_bytes());
    out.put_u8(b' ');
    out.put_slice(if target.is_empty() { b"/" } else { target.as_bytes() });
    out.put_slice(b" HTTP/1.1\r\nHost: ");
    out.put_slice(host.as_bytes());
    out.put_slice(b"\r\n");
    let mut has_length = false;
    for (name, value) in headers {
        has_length |= name.eq_ignore_ascii_case("content-length");
        out.put_slice(name.as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    if let Some(body) = body {
        if !has_length {
            out.put_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        out.put_slice(b"\r\n");
        out.put_slice(body);
    } else {
        out.put_slice(b"\r\n");
    }
}
