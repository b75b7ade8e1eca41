//! The dispatcher function through its Lambda entry (`lambda::dispatcher::handle_event`),
//! on both stores: DynamoDB stream batches in Lambda's JSON shape, built from the items the
//! store wrote; the retry queue's messages received and answered as Lambda's SQS source
//! would, their delays honoured on the controllable clock; receivers on loopback, their
//! signatures checked by the spec's verifier in `tollgate_tests::webhooks`.

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use std::sync::{Arc, Mutex};
use tollgate::app::App;
use tollgate::clock::{Clock, ManualClock};
use tollgate::domain::event::{DeliveryState, EventRecord};
use tollgate::lambda::dispatcher::{handle_event, StreamBatchResponse};
use tollgate::queue::QueueError;
use tollgate::store::{DynamoStore, MemoryStore, Store};
use tollgate::webhook::retry_queue::{RetryMessage, RetryQueue};
use tollgate_tests::conformance::pending;
use tollgate_tests::fake::Seen;
use tollgate_tests::webhooks::{verify, Receiver};
use tollgate_tests::wrappers::CountingStore;
use tollgate_tests::{catalog_json, test_config, T0, UNCAPPED};

const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A store under test by name, the DynamoDB one also as itself (to read the raw items).
type Tested = (&'static str, Arc<dyn Store>, Option<Arc<DynamoStore>>);

async fn stores() -> Vec<Tested> {
    let mut out: Vec<Tested> = vec![("memory", Arc::new(MemoryStore::new()), None)];
    if let Some(d) = tollgate_tests::moto_store().await {
        let d = Arc::new(d);
        out.push(("dynamo", d.clone(), Some(d)));
    }
    out
}

/// The retry queue as SQS behaves for it: a message is visible from its delay on; a
/// received one is hidden for the queue's visibility timeout unless its visibility is
/// changed; one not reported failed is deleted. Time is the app's clock.
struct ClockQueue {
    clock: ManualClock,
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    seq: u64,
    /// (message id, body, visible from)
    messages: Vec<(String, String, i64)>,
    dead: Vec<(String, String)>,
    visibility_changes: Vec<u32>,
}

/// The template's visibility timeout of the retry queue.
const VISIBILITY_TIMEOUT_S: i64 = 720;

impl ClockQueue {
    fn new(clock: ManualClock) -> Arc<Self> {
        Arc::new(ClockQueue {
            clock,
            state: Mutex::new(QueueState::default()),
        })
    }

    fn len(&self) -> usize {
        self.state.lock().unwrap().messages.len()
    }

    fn dead(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().dead.clone()
    }

    /// When the next message becomes visible.
    fn next_visible(&self) -> Option<i64> {
        let s = self.state.lock().unwrap();
        s.messages.iter().map(|(_, _, at)| *at).min()
    }

    /// A batch of what is visible now (`all`: every message, as an early duplicate would
    /// arrive), each hidden for the visibility timeout.
    fn receive(&self, all: bool) -> SqsEvent {
        let now = self.clock.now();
        let mut s = self.state.lock().unwrap();
        let mut event = SqsEvent::default();
        for (id, body, at) in s.messages.iter_mut() {
            if all || *at <= now {
                *at = now + VISIBILITY_TIMEOUT_S;
                let mut m = SqsMessage::default();
                m.message_id = Some(id.clone());
                m.receipt_handle = Some(format!("receipt-{id}"));
                m.body = Some(body.clone());
                m.event_source = Some("aws:sqs".into());
                event.records.push(m);
            }
        }
        event
    }

    /// What Lambda does with the batch's answer: deletes the messages not reported.
    fn finish(&self, batch: &SqsEvent, answer: &SqsBatchResponse) {
        let failed: Vec<&str> = answer
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let mut s = self.state.lock().unwrap();
        for m in &batch.records {
            let id = m.message_id.as_deref().unwrap();
            if !failed.contains(&id) {
                s.messages.retain(|(i, _, _)| i != id);
            }
        }
    }
}

#[async_trait]
impl RetryQueue for ClockQueue {
    async fn send(&self, event_id: &str, delay_s: u32) -> Result<(), QueueError> {
        assert!((1..=900).contains(&delay_s), "delay {delay_s}");
        let mut s = self.state.lock().unwrap();
        s.seq += 1;
        let id = format!("m{}", s.seq);
        let body = RetryMessage {
            event_id: event_id.to_owned(),
        }
        .body();
        s.messages
            .push((id, body, self.clock.now() + i64::from(delay_s)));
        Ok(())
    }

    async fn change_visibility(&self, receipt: &str, delay_s: u32) -> Result<(), QueueError> {
        assert!((1..=43_200).contains(&delay_s), "visibility {delay_s}");
        let now = self.clock.now();
        let mut s = self.state.lock().unwrap();
        s.visibility_changes.push(delay_s);
        let m = s
            .messages
            .iter_mut()
            .find(|(id, _, _)| format!("receipt-{id}") == receipt)
            .expect("a message in flight");
        m.2 = now + i64::from(delay_s);
        Ok(())
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        self.state
            .lock()
            .unwrap()
            .dead
            .push((body.to_owned(), reason.to_owned()));
        Ok(())
    }
}

/// The test catalog with one line of every product, posting to `url`.
fn catalog_with_line(url: &str) -> String {
    let mut c: serde_json::Value = serde_json::from_str(&catalog_json()).unwrap();
    c["lines"] = serde_json::json!([
        {"id": "main", "products": {"pattern": "*"}, "webhooks": [{"url": url, "secret": KEY}]}
    ]);
    c.to_string()
}

fn app(
    store: Arc<dyn Store>,
    clock: &ManualClock,
    url: &str,
    queue: Arc<dyn RetryQueue>,
    extra: &[(&str, &str)],
) -> Arc<App> {
    let catalog = catalog_with_line(url);
    let mut vars = vec![
        ("CATALOG_JSON", catalog.as_str()),
        ("WEBHOOK_RETRY_BASE_SECONDS", "2"),
        ("WEBHOOK_RETRY_MAX_SECONDS", "8"),
    ];
    vars.extend_from_slice(extra);
    let mut app = App::new(test_config(&vars), store, Arc::new(clock.clone())).unwrap();
    app.webhook_queue = Some(queue);
    Arc::new(app)
}

/// Creates an order at `at`: its `order.created` event is recorded with it. Its id.
async fn new_event(store: &dyn Store, seed: u64, user: &str, at: i64) -> String {
    let o = pending(seed, user, at);
    store.create_order(&o, None, &UNCAPPED, at).await.unwrap();
    let page = store.events_since(at - 1, at + 1, 100, None).await.unwrap();
    page.records
        .into_iter()
        .find(|r| r.event.user_id == user)
        .expect("the order's event")
        .event
        .id
}

/// DynamoDB's JSON of an attribute value, as a stream record carries it.
fn attribute_json(v: &aws_sdk_dynamodb::types::AttributeValue) -> serde_json::Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) => serde_json::json!({ "S": s }),
        A::N(n) => serde_json::json!({ "N": n }),
        A::Bool(b) => serde_json::json!({ "BOOL": b }),
        A::Null(b) => serde_json::json!({ "NULL": b }),
        A::Ss(l) => serde_json::json!({ "SS": l }),
        A::Ns(l) => serde_json::json!({ "NS": l }),
        A::L(l) => serde_json::json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        A::M(m) => serde_json::json!({
            "M": m.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect::<serde_json::Map<_, _>>()
        }),
        other => panic!("attribute {other:?} not expected on an event item"),
    }
}

/// The new image of event `id`: the item as DynamoDB holds it, or, for the memory store,
/// the same keys and marker.
async fn image(dynamo: Option<&DynamoStore>, id: &str) -> serde_json::Value {
    match dynamo {
        Some(d) => {
            let out = d
                .client()
                .get_item()
                .table_name(d.table())
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("EVENT#{id}")),
                )
                .key(
                    "sk",
                    aws_sdk_dynamodb::types::AttributeValue::S("EVENT".into()),
                )
                .consistent_read(true)
                .send()
                .await
                .unwrap();
            let item = out.item().expect("the event item");
            serde_json::Value::Object(
                item.iter()
                    .map(|(k, v)| (k.clone(), attribute_json(v)))
                    .collect(),
            )
        }
        None => serde_json::json!({
            "pk": {"S": format!("EVENT#{id}")}, "sk": {"S": "EVENT"},
            "record": {"S": "EVENT"}, "id": {"S": id}
        }),
    }
}

/// A stream batch of `(event name, image)` records, sequence numbers from 100.
fn stream_batch(records: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = records
        .iter()
        .enumerate()
        .map(|(i, (name, image))| {
            serde_json::json!({
                "eventID": format!("e{i}"),
                "eventName": name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": T0,
                    "Keys": {"pk": image["pk"], "sk": image["sk"]},
                    "NewImage": image,
                    "SequenceNumber": format!("{}", 100 + i),
                    "SizeBytes": 512,
                    "StreamViewType": "NEW_IMAGE"
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/tollgate/stream/2026-01-01T00:00:00.000"
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

async fn stream(app: &App, batch: serde_json::Value) -> StreamBatchResponse {
    serde_json::from_value(handle_event(app, batch).await.unwrap()).unwrap()
}

/// Runs one batch of the retry queue through the entry, as Lambda would.
async fn retry_round(app: &App, q: &ClockQueue, all: bool) -> SqsBatchResponse {
    let batch = q.receive(all);
    let value = serde_json::to_value(&batch).unwrap();
    let answer: SqsBatchResponse = if batch.records.is_empty() {
        SqsBatchResponse::default()
    } else {
        serde_json::from_value(handle_event(app, value).await.unwrap()).unwrap()
    };
    q.finish(&batch, &answer);
    answer
}

async fn record(store: &dyn Store, id: &str) -> EventRecord {
    store.get_event(id).await.unwrap().unwrap()
}

fn check_signed(seen: &[Seen], id: &str) {
    for s in seen {
        assert!(verify(KEY, s), "signature of {}", s.header("webhook-id"));
        assert_eq!(s.header("webhook-id"), id);
        let body: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
        assert_eq!(body["id"], id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_batch_delivers_each_inserted_event_once_signed() {
    for (name, store, dynamo) in stores().await {
        let rx = Receiver::start().await;
        let clock = ManualClock::at(T0);
        let q = ClockQueue::new(clock.clone());
        let app = app(store.clone(), &clock, &rx.url(), q.clone(), &[]);
        let a = new_event(&*store, 9_100, &format!("stream-a-{name}"), T0).await;
        let b = new_event(&*store, 9_101, &format!("stream-b-{name}"), T0).await;
        let (ia, ib) = (
            image(dynamo.as_deref(), &a).await,
            image(dynamo.as_deref(), &b).await,
        );
        assert_eq!(ia["record"]["S"], "EVENT", "{name}: the filter's attribute");
        // The dispatcher's own state write comes back as a MODIFY: ignored.
        let batch = stream_batch(&[("INSERT", ia.clone()), ("INSERT", ib), ("MODIFY", ia)]);
        let r = stream(&app, batch).await;
        assert!(r.batch_item_failures.is_empty(), "{name}: {r:?}");
        let seen = rx.seen();
        assert_eq!(seen.len(), 2, "{name}");
        for id in [&a, &b] {
            let mine: Vec<Seen> = seen
                .iter()
                .filter(|s| s.header("webhook-id") == id.as_str())
                .cloned()
                .collect();
            assert_eq!(mine.len(), 1, "{name}: {id}");
            check_signed(&mine, id);
            let d = &record(&*store, id).await.deliveries[&rx.url()];
            assert_eq!((d.state, d.attempts), (DeliveryState::Delivered, 1));
        }
        assert_eq!(q.len(), 0, "{name}: nothing to retry");
        // The same batch again (the stream's at-least-once): nothing is due, nothing sent.
        let batch = stream_batch(&[("INSERT", image(dynamo.as_deref(), &a).await)]);
        assert!(stream(&app, batch).await.batch_item_failures.is_empty());
        assert_eq!(rx.seen().len(), 2, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_five_times_gets_the_event_once_through_the_retry_queue() {
    for (name, store, dynamo) in stores().await {
        let rx = Receiver::start().await;
        rx.mode
            .fail_next
            .store(5, std::sync::atomic::Ordering::SeqCst);
        let clock = ManualClock::at(T0);
        let q = ClockQueue::new(clock.clone());
        let app = app(store.clone(), &clock, &rx.url(), q.clone(), &[]);
        let id = new_event(&*store, 9_200, &format!("retry-{name}"), T0).await;
        let batch = stream_batch(&[("INSERT", image(dynamo.as_deref(), &id).await)]);
        assert!(stream(&app, batch).await.batch_item_failures.is_empty());
        assert_eq!(rx.seen().len(), 1);
        assert_eq!(
            q.len(),
            1,
            "{name}: the pending delivery is a retry message"
        );

        // An early arrival (before the delivery is due) sends nothing: the message is
        // hidden until it is due and reported back.
        let early = retry_round(&app, &q, true).await;
        assert_eq!(early.batch_item_failures.len(), 1, "{name}");
        assert_eq!(rx.seen().len(), 1, "{name}: nothing sent early");
        assert_eq!(q.len(), 1);
        let due = record(&*store, &id).await.deliveries[&rx.url()]
            .next_try
            .unwrap();
        assert_eq!(q.next_visible(), Some(due), "{name}: visible when due");

        let mut rounds = 0;
        while let Some(at) = q.next_visible() {
            rounds += 1;
            assert!(rounds < 20, "{name}: still retrying");
            clock.set(at.max(clock.now()));
            let r = retry_round(&app, &q, false).await;
            assert!(r.batch_item_failures.is_empty(), "{name}: {r:?}");
        }
        let seen = rx.seen();
        assert_eq!(seen.len(), 6, "{name}: five failures, then the delivery");
        check_signed(&seen, &id);
        let d = &record(&*store, &id).await.deliveries[&rx.url()];
        assert_eq!(
            (d.state, d.attempts, d.last_status),
            (DeliveryState::Delivered, 6, Some(204)),
            "{name}"
        );
        assert!(q.dead().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_post_and_state_write_is_a_batch_item_failure_and_sends_the_same_id() {
    for (name, store, dynamo) in stores().await {
        let rx = Receiver::start().await;
        let counting = CountingStore::new(store.clone());
        let clock = ManualClock::at(T0);
        let q = ClockQueue::new(clock.clone());
        let app = app(counting.clone(), &clock, &rx.url(), q.clone(), &[]);
        let a = new_event(&*store, 9_300, &format!("crash-a-{name}"), T0).await;
        let b = new_event(&*store, 9_301, &format!("crash-b-{name}"), T0).await;
        let batch = stream_batch(&[
            ("INSERT", image(dynamo.as_deref(), &a).await),
            ("INSERT", image(dynamo.as_deref(), &b).await),
        ]);
        counting.fail_next("put_event_deliveries", 1);
        let r = stream(&app, batch.clone()).await;
        let failed: Vec<&str> = r
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(
            failed,
            ["100"],
            "{name}: the first record, where the stream resumes"
        );
        let seen = rx.seen();
        assert_eq!(
            seen.len(),
            1,
            "{name}: posted once, the rest left for the retry"
        );
        assert_eq!(seen[0].header("webhook-id"), a);
        assert!(record(&*store, &a).await.deliveries.is_empty(), "{name}");

        // The stream gives the batch again from that record.
        let r = stream(&app, batch).await;
        assert!(r.batch_item_failures.is_empty(), "{name}: {r:?}");
        let seen = rx.seen();
        assert_eq!(seen.len(), 3, "{name}");
        let again: Vec<Seen> = seen
            .iter()
            .filter(|s| s.header("webhook-id") == a.as_str())
            .cloned()
            .collect();
        assert_eq!(again.len(), 2, "{name}: sent again under its one id");
        check_signed(&again, &a);
        for id in [&a, &b] {
            let d = &record(&*store, id).await.deliveries[&rx.url()];
            assert_eq!(d.state, DeliveryState::Delivered, "{name}: {id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_given_up_is_dead_lettered_once() {
    for (name, store, dynamo) in stores().await {
        let rx = Receiver::start().await;
        rx.mode
            .down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let clock = ManualClock::at(T0);
        let q = ClockQueue::new(clock.clone());
        let app = app(
            store.clone(),
            &clock,
            &rx.url(),
            q.clone(),
            &[("WEBHOOK_GIVE_UP_SECONDS", "30")],
        );
        let id = new_event(&*store, 9_400, &format!("give-up-{name}"), T0).await;
        let batch = stream_batch(&[("INSERT", image(dynamo.as_deref(), &id).await)]);
        assert!(stream(&app, batch).await.batch_item_failures.is_empty());
        let mut rounds = 0;
        while let Some(at) = q.next_visible() {
            rounds += 1;
            assert!(rounds < 40, "{name}: still retrying");
            clock.set(at.max(clock.now()));
            let r = retry_round(&app, &q, false).await;
            assert!(r.batch_item_failures.is_empty(), "{name}: {r:?}");
        }
        let d = &record(&*store, &id).await.deliveries[&rx.url()];
        assert_eq!(d.state, DeliveryState::Failed, "{name}");
        assert!(clock.now() - T0 >= 30);
        let dead = q.dead();
        assert_eq!(dead.len(), 1, "{name}: {dead:?}");
        assert_eq!(RetryMessage::parse(&dead[0].0).unwrap().event_id, id);
        assert!(dead[0].1.contains("given up"), "{}", dead[0].1);
        assert!(rx.seen().len() >= 2, "{name}: retried before giving up");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_dead_lettered_and_other_shapes_refused() {
    let rx = Receiver::start().await;
    let clock = ManualClock::at(T0);
    let q = ClockQueue::new(clock.clone());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let app = app(store.clone(), &clock, &rx.url(), q.clone(), &[]);
    let mut batch = SqsEvent::default();
    for (i, body) in [
        "{\"kind\":\"requery_order\"}",
        "{\"event_id\":\"../x\"}",
        "",
    ]
    .iter()
    .enumerate()
    {
        let mut m = SqsMessage::default();
        m.message_id = Some(format!("bad{i}"));
        m.receipt_handle = Some(format!("receipt-bad{i}"));
        m.body = Some(body.to_string());
        m.event_source = Some("aws:sqs".into());
        batch.records.push(m);
    }
    let answer: SqsBatchResponse = serde_json::from_value(
        handle_event(&app, serde_json::to_value(&batch).unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(q.dead().len(), 3);
    // A message for an event that no longer exists is done with, quietly.
    let gone = RetryMessage {
        event_id: "evt_00000000000000000000000000000000".into(),
    };
    assert!(RetryMessage::parse(&gone.body()).is_some(), "a valid id");
    q.send(&gone.event_id, 1).await.unwrap();
    clock.advance(1);
    assert!(retry_round(&app, &q, false)
        .await
        .batch_item_failures
        .is_empty());
    assert_eq!(q.len(), 0);
    // Neither a stream nor an SQS batch: an invocation error, never "done".
    assert!(handle_event(
        &app,
        serde_json::json!({"Records": [{"eventSource": "aws:s3"}]})
    )
    .await
    .is_err());
    assert!(handle_event(&app, serde_json::json!({"detail": {}}))
        .await
        .is_err());
    assert!(rx.seen().is_empty());
}

async fn sqs_client() -> Option<aws_sdk_sqs::Client> {
    let endpoint = std::env::var("TOLLGATE_MOTO_ENDPOINT").ok()?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    Some(aws_sdk_sqs::Client::new(&sdk))
}

async fn sqs_receive(client: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages()
        .to_vec()
}

/// The SQS side on moto: a given-up delivery lands on the dead-letter queue with its
/// reason; a wake-up before the delivery is due is hidden with a real receipt handle and
/// reported back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_queue_on_sqs() {
    let Some(client) = sqs_client().await else {
        assert!(
            std::env::var("TOLLGATE_REQUIRE_MOTO").is_err(),
            "moto required"
        );
        eprintln!("skipping: TOLLGATE_MOTO_ENDPOINT not set");
        return;
    };
    let name = format!("tollgate-webhooks-{}", std::process::id());
    let mut urls = Vec::new();
    for q in [format!("{name}-dlq"), name.clone()] {
        let out = client.create_queue().queue_name(q).send().await.unwrap();
        urls.push(out.queue_url().unwrap().to_owned());
    }
    let (dlq_url, url) = (urls[0].clone(), urls[1].clone());
    let sqs = Arc::new(tollgate::queue::SqsQueue::new(
        client.clone(),
        url.clone(),
        Some(dlq_url.clone()),
    ));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rx = Receiver::start().await;
    rx.mode
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let clock = ManualClock::at(T0 + 100);
    let app = app(
        store.clone(),
        &clock,
        &rx.url(),
        sqs.clone(),
        &[
            ("WEBHOOK_GIVE_UP_SECONDS", "30"),
            ("WEBHOOK_RETRY_BASE_SECONDS", "600"),
            ("WEBHOOK_RETRY_MAX_SECONDS", "600"),
        ],
    );
    // An event older than the give-up period: its first failure is its last.
    let old = new_event(&*store, 9_500, "sqs-old", T0).await;
    let batch = stream_batch(&[("INSERT", image(None, &old).await)]);
    assert!(stream(&app, batch).await.batch_item_failures.is_empty());
    assert_eq!(
        record(&*store, &old).await.deliveries[&rx.url()].state,
        DeliveryState::Failed
    );
    let dead = sqs_receive(&client, &dlq_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        RetryMessage::parse(dead[0].body().unwrap())
            .unwrap()
            .event_id,
        old
    );
    let reason = dead[0].message_attributes().unwrap()["reason"]
        .string_value()
        .unwrap();
    assert!(reason.contains("given up"), "{reason}");

    // A new event whose first attempt fails: pending, so a delayed wake-up is queued.
    let id = new_event(&*store, 9_501, "sqs-new", T0 + 100).await;
    let batch = stream_batch(&[("INSERT", image(None, &id).await)]);
    assert!(stream(&app, batch).await.batch_item_failures.is_empty());
    assert_eq!(rx.seen().len(), 2);
    let attrs = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    let delayed = attrs.attributes().unwrap()
        [&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed]
        .clone();
    assert_eq!(delayed, "1", "the wake-up waits for its delay");
    // An early wake-up (sent now, with no delay): nothing is due yet.
    RetryQueue::send(&*sqs, &id, 0).await.unwrap();
    // (The delayed one, should it be visible already, is just as early.)
    let received = sqs_receive(&client, &url).await;
    assert!(!received.is_empty());
    let mut batch = SqsEvent::default();
    for r in &received {
        let mut m = SqsMessage::default();
        m.message_id = r.message_id().map(str::to_owned);
        m.receipt_handle = r.receipt_handle().map(str::to_owned);
        m.body = r.body().map(str::to_owned);
        m.event_source = Some("aws:sqs".into());
        batch.records.push(m);
    }
    let answer: SqsBatchResponse = serde_json::from_value(
        handle_event(&app, serde_json::to_value(&batch).unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        answer.batch_item_failures.len(),
        received.len(),
        "reported back"
    );
    assert_eq!(rx.seen().len(), 2, "nothing sent early");
    // Hidden until due (seconds away): not received again now.
    assert!(sqs_receive(&client, &url).await.is_empty());
}

/// Secrets Manager and Parameter Store on moto, counting the reads.
struct CountedStores {
    inner: tollgate::secret_refs::AwsSecretStores,
    reads: std::sync::atomic::AtomicU32,
}

#[async_trait]
impl tollgate::secret_refs::SecretStores for CountedStores {
    async fn secret(&self, id: &tollgate::secret_refs::SecretId) -> Result<String, String> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.secret(id).await
    }
    async fn parameters(
        &self,
        names: &[String],
    ) -> Result<std::collections::HashMap<String, String>, String> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.parameters(names).await
    }
}

/// Keys by reference: read when first needed and kept; an endpoint whose reference cannot
/// be read yet is not skipped but tried again, and delivered once it can be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_by_reference_are_read_at_send_time_and_an_unreadable_one_is_retried() {
    let Some(endpoint) = std::env::var("TOLLGATE_MOTO_ENDPOINT").ok() else {
        assert!(
            std::env::var("TOLLGATE_REQUIRE_MOTO").is_err(),
            "moto required"
        );
        eprintln!("skipping: TOLLGATE_MOTO_ENDPOINT not set");
        return;
    };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let u = std::process::id();
    let parameter = format!("/tollgate/{u}/hook");
    let arn = secrets
        .create_secret()
        .name(format!("tollgate/{u}/hooks"))
        .secret_string(serde_json::json!({ "line": KEY }).to_string())
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    for (label, reference) in [
        ("ssm", format!("ssm:{parameter}")),
        ("secrets manager", format!("{arn}:line")),
    ] {
        let stores = Arc::new(CountedStores {
            inner: tollgate::secret_refs::AwsSecretStores::new(&sdk),
            reads: Default::default(),
        });
        let rx = Receiver::start().await;
        let clock = ManualClock::at(T0);
        let q = ClockQueue::new(clock.clone());
        let mut c: serde_json::Value = serde_json::from_str(&catalog_json()).unwrap();
        c["lines"] = serde_json::json!([{"id": "main", "products": {"pattern": "*"},
            "webhooks": [{"url": rx.url(), "secret": reference}]}]);
        let catalog = c.to_string();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut app = App::new(
            test_config(&[
                ("CATALOG_JSON", catalog.as_str()),
                ("WEBHOOK_RETRY_BASE_SECONDS", "2"),
                ("WEBHOOK_RETRY_MAX_SECONDS", "8"),
            ]),
            store.clone(),
            Arc::new(clock.clone()),
        )
        .unwrap();
        app.webhook_queue = Some(q.clone());
        app.webhook_secrets = Arc::new(tollgate::webhook::secrets::WebhookSecrets::with_stores(
            stores.clone(),
        ));
        let app = Arc::new(app);
        // The parameter does not exist yet: nothing can be signed. (The Secrets Manager
        // case starts readable.)
        if label == "ssm" {
            let id = new_event(&*store, 9_600, "ref-early", T0).await;
            let batch = stream_batch(&[("INSERT", image(None, &id).await)]);
            assert!(stream(&app, batch).await.batch_item_failures.is_empty());
            assert!(rx.seen().is_empty(), "{label}: nothing sent unsigned");
            let d = &record(&*store, &id).await.deliveries[&rx.url()];
            assert_eq!(
                (d.state, d.attempts, d.last_status),
                (DeliveryState::Pending, 1, None),
                "{label}: tried again, not skipped"
            );
            assert_eq!(q.len(), 1, "{label}: its retry is queued");
            ssm.put_parameter()
                .name(&parameter)
                .value(KEY)
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .send()
                .await
                .unwrap();
            while let Some(at) = q.next_visible() {
                clock.set(at.max(clock.now()));
                let r = retry_round(&app, &q, false).await;
                assert!(r.batch_item_failures.is_empty(), "{label}: {r:?}");
            }
            let seen = rx.seen();
            assert_eq!(seen.len(), 1, "{label}");
            check_signed(&seen, &id);
        }
        let before = stores.reads.load(std::sync::atomic::Ordering::SeqCst);
        let mut ids = Vec::new();
        for seed in 0..3 {
            let id = new_event(&*store, 9_610 + seed, &format!("ref-{seed}"), clock.now()).await;
            let batch = stream_batch(&[("INSERT", image(None, &id).await)]);
            assert!(stream(&app, batch).await.batch_item_failures.is_empty());
            ids.push(id);
        }
        let after = stores.reads.load(std::sync::atomic::Ordering::SeqCst);
        // The parameter was read by the retry above; the secret is read now, once.
        let expected = if label == "ssm" { 0 } else { 1 };
        assert_eq!(after - before, expected, "{label}: read once, then kept");
        for id in &ids {
            let mine: Vec<Seen> = rx
                .seen()
                .into_iter()
                .filter(|s| s.header("webhook-id") == id.as_str())
                .collect();
            assert_eq!(mine.len(), 1, "{label}");
            check_signed(&mine, id);
        }
    }
}

/// Parameter Store as a map, for tests that need no AWS.
struct MapStores(std::collections::HashMap<String, String>);

#[async_trait]
impl tollgate::secret_refs::SecretStores for MapStores {
    async fn secret(&self, _: &tollgate::secret_refs::SecretId) -> Result<String, String> {
        Err("no such secret".into())
    }
    async fn parameters(
        &self,
        names: &[String],
    ) -> Result<std::collections::HashMap<String, String>, String> {
        Ok(names
            .iter()
            .filter_map(|n| Some((n.clone(), self.0.get(n)?.clone())))
            .collect())
    }
}

/// An operator's redelivery signs with a key given by reference too, read through the
/// app's reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_signs_with_a_key_given_by_reference() {
    let rx = Receiver::start().await;
    let clock = ManualClock::at(T0);
    let mut c: serde_json::Value = serde_json::from_str(&catalog_json()).unwrap();
    c["lines"] = serde_json::json!([{"id": "main", "products": {"pattern": "*"},
        "webhooks": [{"url": rx.url(), "secret": "ssm:/hooks/main"}]}]);
    let catalog = c.to_string();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut app = App::new(
        test_config(&[("CATALOG_JSON", catalog.as_str())]),
        store.clone(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    app.webhook_secrets = Arc::new(tollgate::webhook::secrets::WebhookSecrets::with_stores(
        Arc::new(MapStores(
            [("/hooks/main".to_string(), KEY.to_string())].into(),
        )),
    ));
    let id = new_event(&*store, 9_700, "redeliver-ref", T0).await;
    let (written, line) = tollgate::service::events::redeliver(&app, &id)
        .await
        .unwrap();
    assert_eq!(line, "main");
    assert_eq!(
        written.deliveries[&rx.url()].state,
        DeliveryState::Delivered
    );
    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    check_signed(&seen, &id);
}
