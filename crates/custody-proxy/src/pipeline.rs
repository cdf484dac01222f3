//! The request pipeline, one stage after another:
//!
//! 1. request id — honour `x-request-id` or generate one;
//! 2. route — longest prefix; none → 404;
//! 3. body — read up to `limits.max_request_body` (413 beyond it, 400 if malformed);
//! 4. inspect — the model named in an LLM request body;
//! 5. upstream — rewrite URI and headers, send with the response-header timeout;
//! 6. respond — stream the upstream's body through [`AuditedBody`], which records the
//!    row when the stream ends.
//!
//! Every exit from this chain goes through [`Exchange`], so every request yields
//! exactly one audit row.

use crate::body::{AuditedBody, Exchange};
use crate::config::Config;
use crate::error::{ProxyError, chain};
use crate::headers::{X_REQUEST_ID, strip_hop_by_hop};
use crate::route::{Route, Router};
use crate::upstream::HttpClient;
use bytes::Bytes;
use custody_audit::{AuditRecord, AuditSink};
use custody_core::{Action, ActionKind, RequestId};
use http::{HeaderValue, Request, Response, Uri, Version, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// What the pipeline answers with: a relayed upstream stream or custody's own JSON.
pub(crate) type ProxyBody = Either<AuditedBody, Full<Bytes>>;

#[derive(Debug)]
pub(crate) struct Pipeline {
    router: Router,
    client: HttpClient,
    sink: AuditSink,
    cut: CancellationToken,
    max_request_body: u64,
    response_header_timeout: Duration,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

impl Pipeline {
    /// `cut` is cancelled when shutdown cuts the connections left after the grace
    /// period.
    pub(crate) fn new(
        config: &Config,
        client: HttpClient,
        sink: AuditSink,
        cut: CancellationToken,
    ) -> Self {
        Self {
            router: Router::new(&config.routes),
            client,
            sink,
            cut,
            max_request_body: config.limits.max_request_body,
            response_header_timeout: config.upstream.response_header_timeout,
            connect_timeout: config.upstream.connect_timeout,
            idle_timeout: config.upstream.idle_timeout,
        }
    }

    /// A new exchange for a request that arrived at `started`.
    pub(crate) fn exchange(&self, started: Instant, record: AuditRecord) -> Exchange {
        Exchange::new(self.sink.clone(), self.cut.clone(), started, record)
    }

    /// Handles one request; never fails (errors are answered as JSON).
    pub(crate) async fn handle(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let started = Instant::now();
        let arrived = SystemTime::now();
        let request_id = RequestId::from_header_or_generate(
            req.headers().get(X_REQUEST_ID).map(HeaderValue::as_bytes),
        );
        let route = self.router.find(req.uri().path());
        let action = Action {
            kind: route.map_or(ActionKind::Http, |(r, _)| r.kind.action_kind()),
            route: route.map(|(r, _)| r.name.clone()),
            method: req.method().as_str().to_owned(),
            path: req.uri().path().to_owned(),
            upstream: None,
            tool: None,
            parameters: None,
        };
        let mut exchange = self.exchange(
            started,
            AuditRecord::new(arrived, request_id.to_string(), action),
        );
        let result = match route {
            None => Err(ProxyError::RouteNotFound {
                path: req.uri().path().to_owned(),
                prefixes: self.router.prefixes().to_owned(),
            }),
            Some((route, rest)) => {
                let rest = rest.to_owned();
                self.forward(&mut exchange, req, route, &rest, &request_id)
                    .await
            }
        };
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                exchange.record().outcome.status = Some(i32::from(status));
                response.map(|body| {
                    Either::Left(AuditedBody::new(body, exchange, status, self.idle_timeout))
                })
            }
            Err(e) => {
                let response = e.to_response(request_id.as_str());
                let len = response.body().size_hint().exact().unwrap_or(0);
                exchange.finish(Some(response.status().as_u16()), Some(e.to_string()), len);
                response.map(Either::Right)
            }
        }
    }

    async fn forward(
        &self,
        exchange: &mut Exchange,
        req: Request<Incoming>,
        route: &Route,
        rest: &str,
        request_id: &RequestId,
    ) -> Result<Response<Incoming>, ProxyError> {
        let (mut parts, body) = req.into_parts();

        // Body, bounded.
        let limit = self.max_request_body;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(n) = declared {
            exchange.record().outcome.bytes_in = i64::try_from(n).unwrap_or(i64::MAX);
            if n > limit {
                return Err(ProxyError::BodyTooLarge { limit });
            }
        }
        let body = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ProxyError::BodyTooLarge { limit }
                } else {
                    ProxyError::BadRequest(format!("reading the request body: {}", chain(&*e)))
                }
            })?
            .to_bytes();
        exchange.record().outcome.bytes_in = body.len() as i64;

        // Inspect.
        if route.kind.is_llm() {
            exchange.record().usage.model = model_of(&body);
        }

        // Upstream request.
        let upstream = &route.upstream;
        let mut path = String::with_capacity(upstream.base_path.len() + rest.len() + 1);
        path.push_str(&upstream.base_path);
        path.push_str(rest);
        if path.is_empty() {
            path.push('/');
        }
        exchange.record().action.upstream = Some(format!(
            "{}://{}{}",
            upstream.scheme, upstream.authority, path
        ));
        if let Some(q) = parts.uri.query() {
            path.push('?');
            path.push_str(q);
        }
        let uri = Uri::builder()
            .scheme(upstream.scheme.clone())
            .authority(upstream.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| ProxyError::BadRequest(format!("cannot form the upstream URI: {e}")))?;
        strip_hop_by_hop(&mut parts.headers);
        // Host comes from the upstream URI; length from the buffered body.
        parts.headers.remove(header::HOST);
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::EXPECT);
        if let Ok(v) = HeaderValue::from_str(request_id.as_str()) {
            parts.headers.insert(X_REQUEST_ID, v);
        }
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        let upstream_req = Request::from_parts(parts, Full::new(body));

        let origin = || format!("{}://{}", upstream.scheme, upstream.authority);
        let response = match tokio::time::timeout(
            self.response_header_timeout,
            self.client.request(upstream_req),
        )
        .await
        {
            Err(_) => {
                return Err(ProxyError::UpstreamTimeout {
                    upstream: origin(),
                    phase: "response headers",
                    after: self.response_header_timeout,
                });
            }
            Ok(Err(e)) => {
                let cause = chain(&e);
                let timed_out = e.is_connect() && cause.contains("timed out");
                return Err(if timed_out {
                    ProxyError::UpstreamTimeout {
                        upstream: origin(),
                        phase: "connect",
                        after: self.connect_timeout,
                    }
                } else {
                    ProxyError::UpstreamUnreachable {
                        upstream: origin(),
                        cause,
                    }
                });
            }
            Ok(Ok(response)) => response,
        };

        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Ok(v) = HeaderValue::from_str(request_id.as_str()) {
            parts.headers.insert(X_REQUEST_ID, v);
        }
        Ok(Response::from_parts(parts, body))
    }
}

/// `model` from a JSON request body, if there is one.
fn model_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ModelOnly {
        model: Option<String>,
    }
    if body.is_empty() {
        return None;
    }
    serde_json::from_slice::<ModelOnly>(body)
        .ok()
        .and_then(|m| m.model)
        .map(|m| m.chars().take(256).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_read_from_json_bodies_only() {
        assert_eq!(
            model_of(br#"{"model":"gpt-4o","messages":[]}"#).as_deref(),
            Some("gpt-4o")
        );
        assert_eq!(model_of(br#"{"messages":[]}"#), None);
        assert_eq!(model_of(b"not json"), None);
        assert_eq!(model_of(br#"{"model": 42}"#), None);
        assert_eq!(model_of(b""), None);
    }
}
