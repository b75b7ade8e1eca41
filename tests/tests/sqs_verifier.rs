//! The verifier against SQS on moto: retry reporting and visibility backoff, poison messages
//! to the dead-letter queue, and SQS's own redrive after eight receives.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use std::collections::HashMap;
use std::sync::Arc;
use tollgate::app::{App, Queue};
use tollgate::clock::ManualClock;
use tollgate::domain::OrderState;
use tollgate::queue::{Job, JobQueue, SqsQueue};
use tollgate_tests::conformance::pending;
use tollgate_tests::fake_provider::{Answer, FakeServer, ScriptedProvider, NAME};
use tollgate_tests::*;

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

/// A queue with a DLQ and the template's redrive policy.
async fn queues(client: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let dlq = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .unwrap();
    let dlq_url = dlq.queue_url().unwrap().to_owned();
    let arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let main = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, "60")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"8"}}"#),
        )
        .send()
        .await
        .unwrap();
    (main.queue_url().unwrap().to_owned(), dlq_url)
}

async fn receive(client: &aws_sdk_sqs::Client, url: &str, visibility: i32) -> SqsEvent {
    let out = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(visibility)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let mut event = SqsEvent::default();
    for m in out.messages() {
        let mut msg = SqsMessage::default();
        msg.message_id = m.message_id().map(str::to_owned);
        msg.receipt_handle = m.receipt_handle().map(str::to_owned);
        msg.body = m.body().map(str::to_owned);
        msg.attributes = m
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                    .collect()
            })
            .unwrap_or_else(HashMap::new);
        event.records.push(msg);
    }
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifier_on_sqs() {
    let Some(client) = sqs_client().await else {
        assert!(
            std::env::var("TOLLGATE_REQUIRE_MOTO").is_err(),
            "moto required"
        );
        eprintln!("skipping: TOLLGATE_MOTO_ENDPOINT not set");
        return;
    };
    let name = format!("tollgate-jobs-{}", std::process::id());
    let (url, dlq_url) = queues(&client, &name).await;
    let sqs = Arc::new(SqsQueue::new(
        client.clone(),
        url.clone(),
        Some(dlq_url.clone()),
    ));
    let store = store_for(Backend::Memory).await.unwrap();
    let fake = FakeServer::start().await;
    let mut app = App::new(
        test_config(&[]),
        store.clone(),
        Arc::new(ManualClock::at(T0 + 900)),
    )
    .unwrap();
    ScriptedProvider::register(&fake.base, &mut app.providers);
    app.queue = Some(Queue::Sqs(sqs.clone()));
    let app = Arc::new(app);

    let mut failing = pending(1, "sqs-user", T0);
    failing.provider = NAME.into();
    store
        .create_order(&failing, None, &UNCAPPED, T0)
        .await
        .unwrap();
    fake.script(failing.order_id.as_str(), vec![Answer::ServerError]);
    let mut paying = pending(2, "sqs-user", T0);
    paying.provider = NAME.into();
    store
        .create_order(&paying, None, &UNCAPPED, T0)
        .await
        .unwrap();
    fake.script(
        paying.order_id.as_str(),
        vec![Answer::Paid {
            txn: "sqs-t".into(),
            amount: 900,
        }],
    );

    // A batch with a failing job, a succeeding job and a poison message.
    sqs.send(
        &Job::RequeryOrder {
            order_id: failing.order_id.to_string(),
        },
        0,
    )
    .await
    .unwrap();
    sqs.send(
        &Job::RequeryOrder {
            order_id: paying.order_id.to_string(),
        },
        0,
    )
    .await
    .unwrap();
    client
        .send_message()
        .queue_url(&url)
        .message_body("{\"kind\":\"mystery\"}")
        .send()
        .await
        .unwrap();
    let batch = receive(&client, &url, 60).await;
    assert_eq!(batch.records.len(), 3);
    let failing_id = batch
        .records
        .iter()
        .find(|r| {
            r.body
                .as_deref()
                .unwrap_or("")
                .contains(failing.order_id.as_str())
        })
        .and_then(|r| r.message_id.clone())
        .unwrap();
    let response = tollgate::lambda::handle_sqs_batch(&app, batch).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        failed,
        vec![failing_id],
        "only the retryable job is reported failed"
    );
    assert_eq!(
        store
            .get_order(&paying.order_id)
            .await
            .unwrap()
            .unwrap()
            .state,
        OrderState::Paid
    );
    // The poison message went straight to the dead-letter queue, with its reason.
    let dead = client
        .receive_message()
        .queue_url(&dlq_url)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    assert_eq!(dead.messages().len(), 1);
    assert_eq!(dead.messages()[0].body(), Some("{\"kind\":\"mystery\"}"));
    assert!(dead.messages()[0].message_attributes().unwrap()["reason"]
        .string_value()
        .unwrap()
        .contains("malformed"));

    // Backoff is the message's visibility: a long one hides it.
    client.purge_queue().queue_url(&url).send().await.unwrap();
    sqs.send(
        &Job::RequeryOrder {
            order_id: failing.order_id.to_string(),
        },
        0,
    )
    .await
    .unwrap();
    let batch = receive(&client, &url, 0).await;
    let receipt = batch.records[0].receipt_handle.clone().unwrap();
    sqs.change_visibility(&receipt, 600).await.unwrap();
    assert!(
        receive(&client, &url, 0).await.records.is_empty(),
        "hidden for its backoff"
    );

    // SQS's redrive: a job that keeps failing lands in the DLQ after 8 receives.
    let (url2, dlq2) = queues(&client, &format!("{name}-b")).await;
    client
        .send_message()
        .queue_url(&url2)
        .message_body(
            Job::RequeryOrder {
                order_id: failing.order_id.to_string(),
            }
            .to_body()
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let mut receives = 0;
    for _ in 0..12 {
        let batch = receive(&client, &url2, 0).await;
        if batch.records.is_empty() {
            break;
        }
        receives += 1;
        let r = tollgate::lambda::handle_sqs_batch(&app, batch).await;
        assert_eq!(r.batch_item_failures.len(), 1);
    }
    assert_eq!(receives, 8);
    let dead = client
        .receive_message()
        .queue_url(&dlq2)
        .send()
        .await
        .unwrap();
    assert_eq!(dead.messages().len(), 1, "redriven to the DLQ, not lost");
    assert_eq!(
        store
            .get_order(&failing.order_id)
            .await
            .unwrap()
            .unwrap()
            .state,
        OrderState::Pending
    );
}
