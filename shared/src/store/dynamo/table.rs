//! The table's schema: keys, the due index, the order-history index, the audit index and TTL, as
//! `template.yaml` declares them.

use super::errors::unavailable;
use super::DynamoStore;
use crate::store::StoreError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

/// The due index: PENDING orders by shard (`gsi1pk`) and expiry (`gsi1sk`), keys only.
pub const GSI1: &str = "gsi1";

/// The order-history index: every order by user (`gsi2pk`) and id (`gsi2sk`, a ULID, so
/// newest last), whole orders.
pub const GSI2: &str = "gsi2";

/// The audit index: every audit record in one partition (`gsi3pk` = `AUDIT`) by time
/// (`gsi3sk`, the record's sort key), whole records: `GET /admin/audit?since=`.
pub const GSI3: &str = "gsi3";

impl DynamoStore {
    /// Creates the table with the same schema as `template.yaml` (for tests and local runs
    /// against a DynamoDB emulator).
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let key_el = |name: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
        };
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .key_schema(build(key_el("gsi1pk", KeyType::Hash))?)
            .key_schema(build(key_el("gsi1sk", KeyType::Range))?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build();
        let history = GlobalSecondaryIndex::builder()
            .index_name(GSI2)
            .key_schema(build(key_el("gsi2pk", KeyType::Hash))?)
            .key_schema(build(key_el("gsi2sk", KeyType::Range))?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build();
        let audit = GlobalSecondaryIndex::builder()
            .index_name(GSI3)
            .key_schema(build(key_el("gsi3pk", KeyType::Hash))?)
            .key_schema(build(key_el("gsi3sk", KeyType::Range))?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build();
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(build(attr("pk"))?)
            .attribute_definitions(build(attr("sk"))?)
            .attribute_definitions(build(attr("gsi1pk"))?)
            .attribute_definitions(build(attr("gsi1sk"))?)
            .attribute_definitions(build(attr("gsi2pk"))?)
            .attribute_definitions(build(attr("gsi2sk"))?)
            .attribute_definitions(build(attr("gsi3pk"))?)
            .attribute_definitions(build(attr("gsi3sk"))?)
            .key_schema(build(key_el("pk", KeyType::Hash))?)
            .key_schema(build(key_el("sk", KeyType::Range))?)
            .global_secondary_indexes(build(gsi)?)
            .global_secondary_indexes(build(history)?)
            .global_secondary_indexes(build(audit)?)
            .send()
            .await
            .map_err(|e| unavailable("create table", e))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(build(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build(),
            )?)
            .send()
            .await
            .map_err(|e| unavailable("enable ttl", e))?;
        Ok(())
    }
}

fn build<T>(r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Unavailable(format!("create table: {e}")))
}
