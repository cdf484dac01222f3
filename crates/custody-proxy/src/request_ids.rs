//! The ids of one request, set up before anything else in the pipeline:
//!
//! - the **key** (`request_id`): a UUIDv7 custody generates for every request
//!   ([`RequestId`]); it is the audit row's key, spooled with the intent (a row
//!   replayed after a crash keeps it), the `request_id` of JSON errors and JSON-RPC
//!   error data, the id session links name, and is sent as `x-custody-request-id`
//!   both upstream and in every response custody answers;
//! - the **client's id** (`client_request_id`): the client's `x-request-id` when
//!   it is 1..=128 visible ASCII characters ([`ClientRequestId`]); recorded, never
//!   trusted as a key.
//!
//! `x-request-id` keeps its meaning for clients and upstreams: it is forwarded
//! upstream and echoed in the response as the client's id when it sent one, else
//! as the key. A client's own `x-custody-request-id` is never forwarded: custody
//! overwrites it with the key.

use crate::headers::{X_CUSTODY_REQUEST_ID, X_REQUEST_ID};
use custody_audit::AuditRecord;
use custody_core::{Action, ClientRequestId, RequestId};
use http::{HeaderMap, HeaderValue};
use std::time::SystemTime;

/// custody's key for a request and the client's own id.
#[derive(Clone, Debug)]
pub(crate) struct RequestIds {
    key: RequestId,
    client: Option<ClientRequestId>,
}

impl RequestIds {
    /// A fresh key, and the client's `x-request-id` from `headers` when acceptable.
    pub(crate) fn new(headers: &HeaderMap) -> Self {
        Self {
            key: RequestId::generate(),
            client: headers
                .get(X_REQUEST_ID)
                .and_then(|v| ClientRequestId::from_header(v.as_bytes())),
        }
    }

    /// The key.
    pub(crate) fn key(&self) -> &str {
        self.key.as_str()
    }

    /// The `x-request-id` forwarded upstream and echoed to the client: the client's
    /// id, else the key.
    pub(crate) fn echoed(&self) -> HeaderValue {
        header_value(self.client.as_ref().map_or(self.key(), |c| c.as_str()))
    }

    /// The request's audit record, keyed, with the client's id.
    pub(crate) fn record(&self, arrived: SystemTime, action: Action) -> AuditRecord {
        let mut record = AuditRecord::new(arrived, self.key().to_owned(), action);
        record.client_request_id = self.client.as_ref().map(|c| c.as_str().to_owned());
        record
    }

    /// Sets `x-custody-request-id` (the key) on the request going upstream,
    /// replacing whatever the client sent under that name.
    pub(crate) fn stamp_request(&self, headers: &mut HeaderMap) {
        headers.insert(X_CUSTODY_REQUEST_ID, header_value(self.key()));
    }
}

/// Sets the ids on a response to the request `record` stands for: `x-request-id`
/// (the client's id, else the key) and `x-custody-request-id` (the key).
pub(crate) fn stamp_response(headers: &mut HeaderMap, record: &AuditRecord) {
    stamp(
        headers,
        &record.request_id,
        record.client_request_id.as_deref(),
    );
}

/// [`stamp_response`] from the ids themselves.
pub(crate) fn stamp(headers: &mut HeaderMap, key: &str, client: Option<&str>) {
    headers.insert(X_REQUEST_ID, header_value(client.unwrap_or(key)));
    headers.insert(X_CUSTODY_REQUEST_ID, header_value(key));
}

/// Both kinds of id are visible ASCII, always a valid header value.
fn header_value(id: &str) -> HeaderValue {
    HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_core::ActionKind;

    fn headers(id: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(id) = id {
            h.insert(X_REQUEST_ID, HeaderValue::from_static(id));
        }
        h
    }

    fn action() -> Action {
        Action::new(ActionKind::Http, "GET", "/")
    }

    #[test]
    fn the_key_is_always_custodys_and_the_client_id_is_kept_apart() {
        let a = RequestIds::new(&headers(Some("gap_0196a1b2c3d4")));
        let b = RequestIds::new(&headers(Some("gap_0196a1b2c3d4")));
        assert_ne!(a.key(), b.key());
        assert!(uuid::Uuid::parse_str(a.key()).is_ok_and(|u| u.get_version_num() == 7));
        let r = a.record(SystemTime::now(), action());
        assert_eq!(r.request_id, a.key());
        assert_eq!(r.client_request_id.as_deref(), Some("gap_0196a1b2c3d4"));
        assert_eq!(a.echoed(), "gap_0196a1b2c3d4");
    }

    #[test]
    fn without_a_usable_client_id_the_key_is_echoed() {
        for h in [headers(None), headers(Some("has space"))] {
            let ids = RequestIds::new(&h);
            assert_eq!(ids.echoed(), ids.key());
            let r = ids.record(SystemTime::now(), action());
            assert_eq!(r.client_request_id, None);
        }
    }

    #[test]
    fn responses_and_upstream_requests_carry_the_key() {
        let ids = RequestIds::new(&headers(Some("mine")));
        let r = ids.record(SystemTime::now(), action());
        let mut h = headers(Some("stale"));
        stamp_response(&mut h, &r);
        assert_eq!(h[X_REQUEST_ID], "mine");
        assert_eq!(h[X_CUSTODY_REQUEST_ID], ids.key());
        let mut up = HeaderMap::new();
        up.insert(X_CUSTODY_REQUEST_ID, HeaderValue::from_static("forged"));
        ids.stamp_request(&mut up);
        assert_eq!(up[X_CUSTODY_REQUEST_ID], ids.key());
        assert_eq!(up.get_all(X_CUSTODY_REQUEST_ID).iter().count(), 1);
    }
}
