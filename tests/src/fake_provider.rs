//! A payment provider for fault-injection tests: it implements Tollgate's `Provider` trait by
//! making real HTTP calls to a fake provider server on loopback, whose answers the test
//! scripts per order (paid, not paid, 500s, hangs, garbage).

use crate::fake;
use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tollgate::domain::{Currency, Money, Order};
use tollgate::providers::*;

pub const NAME: &str = "scripted";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Paid {
        txn: String,
        amount: i64,
    },
    NotPaid,
    Closed,
    ServerError,
    /// Never answers within the client's timeout.
    Hang,
    Garbage,
}

#[derive(Default)]
pub struct Script {
    /// Per order id: answers to give, in order; the last one repeats.
    pub answers: HashMap<String, VecDeque<Answer>>,
    pub queries: HashMap<String, u32>,
    pub closes: HashMap<String, u32>,
}

/// The fake server (on [`crate::fake::FakeServer`]); stopped when dropped.
pub struct FakeServer {
    pub base: String,
    pub script: Arc<Mutex<Script>>,
    _server: fake::FakeServer,
}

impl FakeServer {
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let s = script.clone();
        let server = fake::FakeServer::start_async(Arc::new(move |seen: fake::Seen| {
            let s = s.clone();
            Box::pin(async move { answer(&s, &seen).await })
        }))
        .await;
        FakeServer {
            base: server.base.clone(),
            script,
            _server: server,
        }
    }

    pub fn script(&self, order_id: &str, answers: Vec<Answer>) {
        self.script
            .lock()
            .unwrap()
            .answers
            .insert(order_id.to_owned(), answers.into());
    }

    pub fn queries(&self, order_id: &str) -> u32 {
        self.script
            .lock()
            .unwrap()
            .queries
            .get(order_id)
            .copied()
            .unwrap_or(0)
    }

    pub fn closes(&self, order_id: &str) -> u32 {
        self.script
            .lock()
            .unwrap()
            .closes
            .get(order_id)
            .copied()
            .unwrap_or(0)
    }
}

async fn answer(script: &Mutex<Script>, seen: &fake::Seen) -> fake::Answer {
    let path = seen.target.split('?').next().unwrap_or("");
    let reply = |status: u16, body: &str| fake::Answer::plain(status, body.as_bytes());
    if let Some(id) = path.strip_prefix("/close/") {
        *script
            .lock()
            .unwrap()
            .closes
            .entry(id.to_owned())
            .or_default() += 1;
        return reply(200, "{}");
    }
    let Some(id) = path.strip_prefix("/query/") else {
        return reply(404, "{}");
    };
    let a = {
        let mut s = script.lock().unwrap();
        *s.queries.entry(id.to_owned()).or_default() += 1;
        let q = s.answers.entry(id.to_owned()).or_default();
        if q.len() > 1 {
            q.pop_front()
        } else {
            q.front().cloned()
        }
        .unwrap_or(Answer::NotPaid)
    };
    match a {
        Answer::Paid { txn, amount } => reply(
            200,
            &serde_json::json!({"state": "paid", "txn": txn, "amount": amount}).to_string(),
        ),
        Answer::NotPaid => reply(200, r#"{"state":"notpaid"}"#),
        Answer::Closed => reply(200, r#"{"state":"closed"}"#),
        Answer::ServerError => reply(500, "oops"),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            reply(200, r#"{"state":"notpaid"}"#)
        }
        Answer::Garbage => reply(200, "<html>not json"),
    }
}

/// The client side, as a real provider adapter would be written.
pub struct ScriptedProvider {
    base: String,
}

impl ScriptedProvider {
    pub fn new(base: &str) -> Self {
        ScriptedProvider {
            base: base.to_owned(),
        }
    }

    /// Enables the scripted provider in `providers`: it creates payments and answers queries.
    pub fn register(base: &str, providers: &mut Providers) {
        let p = Arc::new(ScriptedProvider::new(base));
        providers.with_creator(NAME, p.clone()).with_query(NAME, p);
    }

    async fn call(&self, path: &str) -> Result<serde_json::Value, ProviderError> {
        let req = http::Request::get(format!("{}{path}", self.base))
            .body(Full::new(Bytes::new()))
            .map_err(|e| ProviderError::Refused(e.to_string()))?;
        let client = tollgate::api::server::http_client();
        let resp = tokio::time::timeout(Duration::from_millis(300), client.request(req))
            .await
            .map_err(|_| ProviderError::Unavailable("timeout".into()))?
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        if resp.status().is_server_error() {
            return Err(ProviderError::Unavailable(format!(
                "HTTP {}",
                resp.status()
            )));
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&body)
            .map_err(|_| ProviderError::Unavailable("garbage answer".into()))
    }
}

#[async_trait]
impl PaymentCreator for ScriptedProvider {
    async fn payment_params(
        &self,
        _order: &Order,
        _payer: &Payer,
    ) -> Result<serde_json::Value, ProviderError> {
        Ok(serde_json::json!({}))
    }
}

#[async_trait]
impl OrderQuery for ScriptedProvider {
    async fn query(&self, order: &Order) -> Result<QueryResult, ProviderError> {
        let v = self.call(&format!("/query/{}", order.order_id)).await?;
        match v["state"].as_str() {
            Some("paid") => Ok(QueryResult::Paid(ProviderEvent::Paid {
                order_id: order.order_id.clone(),
                provider_txn_id: v["txn"].as_str().unwrap_or_default().to_owned(),
                amount: Money::new(v["amount"].as_i64().unwrap_or(-1).max(0), Currency::CNY)
                    .unwrap(),
                paid_at: None,
            })),
            Some("notpaid") => Ok(QueryResult::NotPaid),
            Some("closed") => Ok(QueryResult::Closed),
            _ => Err(ProviderError::Unavailable("unexpected answer".into())),
        }
    }
    async fn close(&self, order: &Order) -> Result<(), ProviderError> {
        self.call(&format!("/close/{}", order.order_id))
            .await
            .map(|_| ())
    }
}
