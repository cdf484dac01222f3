//! Header handling shared by both directions of the proxy.

use http::header::{self, HeaderMap, HeaderName};

/// The request id header: the client's own id (recorded as `client_request_id`),
/// forwarded upstream and echoed back; custody's key when the client sent none.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// custody's key for the request (the audit row's `request_id`), sent upstream and
/// in every response.
pub(crate) const X_CUSTODY_REQUEST_ID: HeaderName = HeaderName::from_static("x-custody-request-id");

/// Connection-level headers (RFC 9110 §7.6.1) that must not be forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers, including any named in `Connection`, and `Upgrade`.
///
/// One pass over the names present finds what to remove: most messages carry
/// none of these, and a removal costs a hash and a probe even for a name that is
/// not there (nine of them, twice per request, were 1 % of custody's
/// instructions per request).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut remove: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        if HOP_BY_HOP.contains(name) || name == header::UPGRADE {
            remove.push(name.clone());
        }
    }
    if remove.is_empty() {
        return;
    }
    if remove.contains(&header::CONNECTION) {
        let listed = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok());
        remove.extend(listed);
    }
    for name in remove {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_standard_and_listed_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            "keep-alive, X-Secret-Hop".parse().expect("value"),
        );
        h.insert("keep-alive", "timeout=5".parse().expect("value"));
        h.insert("x-secret-hop", "1".parse().expect("value"));
        h.insert("transfer-encoding", "chunked".parse().expect("value"));
        h.insert("te", "trailers".parse().expect("value"));
        h.insert("upgrade", "websocket".parse().expect("value"));
        h.insert("authorization", "Bearer x".parse().expect("value"));
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["authorization"]);
    }

    #[test]
    fn leaves_end_to_end_headers_alone() {
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/json".parse().expect("value"));
        h.append("x-hop", "1".parse().expect("value"));
        h.append("x-hop", "2".parse().expect("value"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 3);
        // Each hop-by-hop name on its own, in any case, is removed.
        for name in HOP_BY_HOP.iter().chain([&header::UPGRADE]) {
            let mut h = HeaderMap::new();
            h.insert(name.clone(), "x".parse().expect("value"));
            h.insert("accept", "*/*".parse().expect("value"));
            strip_hop_by_hop(&mut h);
            let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
            assert_eq!(left, ["accept"], "{name}");
        }
        // A name listed in Connection goes even when it is the only other header.
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-only".parse().expect("value"));
        h.insert("x-only", "1".parse().expect("value"));
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }
}
